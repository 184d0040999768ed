package shard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/moderuntime/mode/runtime/manifest"
)

// PinPrefix introduces a pinned manifest hash at the end of a location:
// ".../manifest.json#sha256=HEX" or ".../pack/#sha256=HEX". A manifest is
// the one file of a pack not named by its hash; pinning it makes the whole
// pack as trustworthy as the link, since the manifest holds every other
// file's hash.
const PinPrefix = "#sha256="

// SplitPin separates a pinned manifest hash from a location. A location
// without PinPrefix is returned as it is with an empty pin; one with it
// must end in 64 hex digits.
func SplitPin(location string) (loc, pin string, err error) {
	i := strings.LastIndex(location, PinPrefix)
	if i < 0 {
		return location, "", nil
	}
	loc, pin = location[:i], strings.ToLower(location[i+len(PinPrefix):])
	if b, err := hex.DecodeString(pin); err != nil || len(b) != sha256.Size {
		return "", "", fmt.Errorf("manifest location %s: the pinned sha256 %q is not 64 hex digits", location, pin)
	}
	if loc == "" {
		return "", "", fmt.Errorf("manifest location %s: a pin without a location", location)
	}
	return loc, pin, nil
}

// ReadManifest opens a manifest location (see Open; it may end in a pin,
// see PinPrefix), reads the manifest's bytes, at most manifest.MaxSize of
// them, and checks them against the pin. It returns the source the
// manifest's other files are read from and the bytes, for manifest.Parse.
func ReadManifest(ctx context.Context, location string, o HTTPOptions) (Source, []byte, error) {
	loc, pin, err := SplitPin(location)
	if err != nil {
		return nil, nil, err
	}
	src, name, err := Open(loc, o)
	if err != nil {
		return nil, nil, err
	}
	b, err := ReadFile(ctx, src, name, manifest.MaxSize)
	if err != nil {
		return nil, nil, fmt.Errorf("reading manifest %s: %w", loc, err)
	}
	if pin != "" {
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != pin {
			return nil, nil, fmt.Errorf("manifest %s: sha256 %x, but the location pins %s: the manifest changed or is not the one linked", loc, got, pin)
		}
	}
	return src, b, nil
}

// fileReader is a Source that can read a whole file of unknown size
// without holding more than a bound of it.
type fileReader interface {
	readFile(ctx context.Context, file string, limit int64) ([]byte, error)
}

// ReadFile reads the whole of file, failing when it has more than limit
// bytes. Dir and HTTP sources check before or while reading, holding at
// most limit+1 bytes; another Source is asked for the whole file and the
// size checked after.
func ReadFile(ctx context.Context, src Source, file string, limit int64) ([]byte, error) {
	if fr, ok := src.(fileReader); ok {
		return fr.readFile(ctx, file, limit)
	}
	b, err := src.Read(ctx, file, 0, -1)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d accepted", file, len(b), limit)
	}
	return b, nil
}

func (h *HTTP) readFile(ctx context.Context, file string, limit int64) ([]byte, error) {
	u, err := h.resolve(file)
	if err != nil {
		return nil, err
	}
	t := &transfer{h: h, url: u, want: -1, limit: limit}
	return t.run(ctx)
}

func (d dir) readFile(ctx context.Context, file string, limit int64) ([]byte, error) {
	name, err := d.path(file)
	if err != nil {
		return nil, err
	}
	// Stat before reading: a huge (or sparse, or endless) file must cost
	// nothing.
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file", name)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("read %s: %d bytes, more than the %d accepted", name, fi.Size(), limit)
	}
	return d.Read(ctx, file, 0, fi.Size())
}
