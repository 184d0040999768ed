package shard

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ManifestName is the manifest's file name when a location names only a
// directory.
const ManifestName = "manifest.json"

// Open picks a Source for a manifest location and returns it with the
// manifest's file name relative to it. An http(s) URL gives an HTTP source
// whose base is the URL's directory; anything else is a local path and
// gives a Dir of its directory. A location that is a directory (a local
// one, or a URL ending in "/") means the ManifestName inside it.
func Open(manifestLocation string, o HTTPOptions) (Source, string, error) {
	return open(manifestLocation, o)
}

// OpenNative is Open as it works with a file system and network of one's
// own; on wasip1, Open instead asks the host, which calls OpenNative.
func OpenNative(manifestLocation string, o HTTPOptions) (Source, string, error) {
	loc := manifestLocation
	if loc == "" {
		return nil, "", errors.New("open manifest: empty location")
	}
	if isURL(loc) {
		u, err := url.Parse(loc)
		if err != nil {
			return nil, "", fmt.Errorf("open manifest %s: %w", loc, err)
		}
		name := path.Base(u.Path)
		if u.Path == "" || strings.HasSuffix(u.Path, "/") {
			name = ManifestName
		}
		h, err := NewHTTP(loc, o)
		if err != nil {
			return nil, "", fmt.Errorf("open manifest: %w", err)
		}
		return h, name, nil
	}
	// Stat fails where there is no file system (a browser); the location
	// is then taken as a file's path.
	if fi, err := os.Stat(loc); err == nil && fi.IsDir() {
		return NewDir(loc), ManifestName, nil
	}
	return NewDir(filepath.Dir(loc)), filepath.Base(loc), nil
}
