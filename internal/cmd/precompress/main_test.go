package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
)

func TestPrecompress(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"text", []byte(strings.Repeat("the wasm build, repeated; ", 4000))},
		{"binary", func() []byte {
			b := make([]byte, 1<<16)
			for i := range b {
				b[i] = byte(i * 2654435761 >> 13)
			}
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "mode.wasm")
			if err := os.WriteFile(name, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := precompress(name, &out); err != nil {
				t.Fatal(err)
			}
			decoders := map[string]func(io.Reader) (io.Reader, error){
				".br": func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil },
				".gz": func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
			}
			for ext, dec := range decoders {
				f, err := os.Open(name + ext)
				if err != nil {
					t.Fatal(err)
				}
				r, err := dec(f)
				if err != nil {
					t.Fatalf("%s: %v", ext, err)
				}
				got, err := io.ReadAll(r)
				f.Close()
				if err != nil || !bytes.Equal(got, tt.data) {
					t.Errorf("%s decodes to %d bytes (%v), want the %d of the original", ext, len(got), err, len(tt.data))
				}
			}
			if !strings.Contains(out.String(), "brotli") {
				t.Errorf("report %q does not give the sizes", out.String())
			}
			// Run again: the siblings are up to date and stay as they are;
			// after the file changes they are written anew.
			out.Reset()
			if err := precompress(name, &out); err != nil || !strings.Contains(out.String(), "up to date") {
				t.Errorf("second run: %v, %q, want it to keep the up-to-date siblings", err, out.String())
			}
			// A rewrite with the same bytes (as go build does) keeps them;
			// they are touched so they are no older than the file.
			later := time.Now().Add(time.Minute)
			os.Chtimes(name, later, later)
			out.Reset()
			if err := precompress(name, &out); err != nil || !strings.Contains(out.String(), "up to date") {
				t.Errorf("after a rewrite of the same bytes: %v, %q, want them kept", err, out.String())
			}
			if st, err := os.Stat(name + ".br"); err != nil || st.ModTime().Before(later.Add(-time.Minute)) {
				t.Errorf(".br not touched: %v", err)
			}
			os.WriteFile(name, []byte("changed"), 0o644)
			out.Reset()
			if err := precompress(name, &out); err != nil || strings.Contains(out.String(), "up to date") {
				t.Errorf("after a change: %v, %q, want the siblings written anew", err, out.String())
			}
			if f, err := os.Open(name + ".gz"); err == nil {
				zr, _ := gzip.NewReader(f)
				got, _ := io.ReadAll(zr)
				f.Close()
				if string(got) != "changed" {
					t.Errorf("after a change the .gz holds %q", got)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(name), ".precompress-*")); len(left) != 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
}
