package pack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/shard"
)

// ReadManifest reads and validates dir/manifest.json.
func ReadManifest(dir string) (*manifest.Manifest, error) {
	p := filepath.Join(dir, shard.ManifestName)
	b, err := shard.ReadFile(context.Background(), shard.NewDir(dir), shard.ManifestName, manifest.MaxSize)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return m, nil
}

// Verify checks a pack directory: the manifest's schema, then every file it
// names — present, of the stated size and sha256 — and that tensors sit at
// aligned offsets. It returns every problem found, not just the first.
func Verify(dir string) (*manifest.Manifest, []error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, []error{err}
	}
	var errs []error
	check := func(what, file, sum string, size int64) {
		if err := checkFile(dir, file, sum, size); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	check("tokenizer", m.Tokenizer.File, m.Tokenizer.SHA256, m.Tokenizer.Size)
	if m.Tokenizer.Config != "" {
		check("tokenizer config", m.Tokenizer.Config, m.Tokenizer.ConfigSHA256, m.Tokenizer.ConfigSize)
	}
	for _, s := range m.Shards {
		if len(s.Pieces) != 1 || s.Pieces[0].Offset != 0 {
			errs = append(errs, fmt.Errorf("shard %s: a pack shard is one whole file; this one has %d pieces", s.ID, len(s.Pieces)))
			continue
		}
		check("shard "+s.ID, s.Pieces[0].File, s.SHA256, s.Size)
		for _, t := range s.Tensors {
			if t.Offset%manifest.Align != 0 {
				errs = append(errs, fmt.Errorf("shard %s: tensor %s at offset %d is not %d-byte aligned", s.ID, t.Name, t.Offset, manifest.Align))
			}
		}
	}
	return m, errs
}

// VerifyRemote checks a manifest that is not a local pack — one made by
// `modelpack index`, or any manifest at an http(s) URL — by fetching every
// shard and file it names through the shard sources and checking sizes and
// hashes. It returns every problem found.
func VerifyRemote(ctx context.Context, location string, o shard.HTTPOptions) (*manifest.Manifest, []error) {
	src, b, err := shard.ReadManifest(ctx, location, o)
	if err != nil {
		return nil, []error{err}
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, []error{fmt.Errorf("%s: %w", location, err)}
	}
	f := &shard.Fetcher{Src: src, HTTP: o}
	var errs []error
	files := []manifest.Shard{{ID: "tokenizer", SHA256: m.Tokenizer.SHA256, Size: m.Tokenizer.Size,
		Pieces: []manifest.Piece{{File: m.Tokenizer.File, Length: m.Tokenizer.Size}}}}
	if m.Tokenizer.Config != "" {
		files = append(files, manifest.Shard{ID: "tokenizer config", SHA256: m.Tokenizer.ConfigSHA256, Size: m.Tokenizer.ConfigSize,
			Pieces: []manifest.Piece{{File: m.Tokenizer.Config, Length: m.Tokenizer.ConfigSize}}})
	}
	for _, s := range append(files, m.Shards...) {
		if _, err := f.Fetch(ctx, &s); err != nil {
			errs = append(errs, err)
		}
	}
	return m, errs
}

// checkFile hashes one file the manifest names. The name goes through the
// check every local reader shares (shard.LocalPath), so a manifest cannot
// make verify read outside the pack, and at most size+1 bytes are read, so
// a device or a growing file cannot make it hang.
func checkFile(dir, file, sum string, size int64) error {
	p, err := shard.LocalPath(dir, file)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return err
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", p)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, size+1))
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if n != size {
		return fmt.Errorf("%s: %d bytes, manifest says %d", p, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%s: sha256 %s, manifest says %s", p, got, sum)
	}
	return nil
}
