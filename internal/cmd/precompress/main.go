package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/andybalholm/brotli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: precompress FILE...")
		os.Exit(2)
	}
	for _, name := range os.Args[1:] {
		if err := precompress(name, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "precompress: %v\n", err)
			os.Exit(1)
		}
	}
}

// precompress writes name.br and name.gz and reports their sizes to out.
// Siblings that already decode to name's bytes are kept (and touched, so
// they are no older than name): brotli's best level takes most of a
// minute of CPU for a 13 MB wasm, and `go build` rewrites its output even
// when nothing changed.
func precompress(name string, out io.Writer) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if br, gz, ok := current(name, b); ok {
		fmt.Fprintf(out, "%s: %s, brotli %s, gzip %s (up to date)\n", name, mb(int64(len(b))), mb(br), mb(gz))
		return nil
	}
	br, err := write(name+".br", b, func(w io.Writer) (io.WriteCloser, error) {
		return brotli.NewWriterLevel(w, brotli.BestCompression), nil
	})
	if err != nil {
		return err
	}
	gz, err := write(name+".gz", b, func(w io.Writer) (io.WriteCloser, error) {
		return gzip.NewWriterLevel(w, gzip.BestCompression)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %s, brotli %s, gzip %s\n", name, mb(int64(len(b))), mb(br), mb(gz))
	return nil
}

// current reports whether name.br and name.gz both decode to b, touching
// them if so, and returns their sizes.
func current(name string, b []byte) (br, gz int64, ok bool) {
	decoders := []struct {
		ext string
		dec func(io.Reader) (io.Reader, error)
	}{
		{".br", func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil }},
		{".gz", func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
	}
	var sizes [2]int64
	for i, d := range decoders {
		f, err := os.Open(name + d.ext)
		if err != nil {
			return 0, 0, false
		}
		st, err := f.Stat()
		var got []byte
		if err == nil {
			var r io.Reader
			if r, err = d.dec(f); err == nil {
				got, err = io.ReadAll(io.LimitReader(r, int64(len(b))+1))
			}
		}
		f.Close()
		if err != nil || !bytes.Equal(got, b) {
			return 0, 0, false
		}
		sizes[i] = st.Size()
	}
	now := time.Now()
	for _, d := range decoders {
		if os.Chtimes(name+d.ext, now, now) != nil {
			return 0, 0, false
		}
	}
	return sizes[0], sizes[1], true
}

// write compresses b into path through a temporary file, so that a server
// never sees a half-written sibling, and returns the compressed size.
func write(path string, b []byte, enc func(io.Writer) (io.WriteCloser, error)) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".precompress-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	w, err := enc(f)
	if err == nil {
		_, err = w.Write(b)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	var size int64
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil {
			size = st.Size()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	return size, nil
}

func mb(n int64) string { return fmt.Sprintf("%.2f MB", float64(n)/1e6) }
