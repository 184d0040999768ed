package shard

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Source reads byte ranges of files named relative to a base (a directory
// or a URL). Implementations are safe for concurrent use.
type Source interface {
	// Read returns length bytes of file starting at offset; length < 0
	// reads to the end. Fewer bytes than asked for is an error, never a
	// short result.
	Read(ctx context.Context, file string, offset, length int64) ([]byte, error)
}

// NewDir returns a Source reading files below root. File names use "/"
// separators and must stay inside root: absolute paths and names with ".."
// that climb out are rejected, so a manifest cannot read arbitrary files.
// The check is lexical on purpose: a Hugging Face cache snapshot is a
// directory of symlinks into ../../blobs, which must keep working.
func NewDir(root string) Source { return dir{root: root} }

type dir struct{ root string }

func (d dir) Read(ctx context.Context, file string, offset, length int64) ([]byte, error) {
	name, err := d.path(file)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("read %s: negative offset %d", name, offset)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err // *PathError names the file and the problem
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if length < 0 {
		length = size - offset
	}
	// Check before allocating: a wrong manifest must not cost length bytes.
	if length < 0 || offset+length > size {
		return nil, fmt.Errorf("read %s: bytes [%d, %d) wanted but the file has %d", name, offset, offset+max(length, 0), size)
	}
	if int64(int(length)) != length {
		return nil, fmt.Errorf("read %s: %d bytes do not fit in memory on this platform", name, length)
	}
	b := make([]byte, length)
	adviseHugePages(b) // before the read first touches the pages
	n, err := f.ReadAt(b, offset)
	if n == len(b) {
		return b, nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // the file shrank since Stat
	}
	return nil, fmt.Errorf("read %s: %d of %d bytes at offset %d: %w", name, n, length, offset, err)
}

// path maps a manifest file name to a path below the root.
func (d dir) path(file string) (string, error) {
	if isURL(file) {
		return "", fmt.Errorf("read %s: a URL needs an HTTP source (use a Fetcher, which routes URL pieces to one)", file)
	}
	return LocalPath(d.root, file)
}

// LocalPath maps a file name from a manifest ("/"-separated, relative to
// the pack) to a path below root, refusing a name that is empty, absolute
// or climbs out of root. It is the check every reader of a local pack
// shares, so no manifest can make one read /etc/passwd or /dev/zero.
func LocalPath(root, file string) (string, error) {
	local := filepath.FromSlash(file)
	if !filepath.IsLocal(local) {
		return "", fmt.Errorf("read %q: path is empty, absolute or escapes the directory %s", file, root)
	}
	return filepath.Join(root, local), nil
}

// isURL reports whether a file name is an absolute http(s) URL rather than
// a path relative to the manifest.
func isURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && (strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https"))
}
