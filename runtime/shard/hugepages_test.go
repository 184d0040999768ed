package shard

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestDirReadLarge reads ranges of a file larger than a huge page, which
// the directory source advises onto huge pages before reading, and checks
// every byte, as well as the advice on buffers too small for it and empty.
func TestDirReadLarge(t *testing.T) {
	root := t.TempDir()
	data := make([]byte, 5<<20+12345)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(root, "w.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	src := NewDir(root)
	for _, c := range []struct{ off, n int64 }{{0, -1}, {7, 3<<20 + 1}, {1 << 20, 600 << 10}, {100, 1000}} {
		got, err := src.Read(context.Background(), "w.bin", c.off, c.n)
		if err != nil {
			t.Fatal(err)
		}
		want := data[c.off:]
		if c.n >= 0 {
			want = want[:c.n]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read at %d of %d bytes: the bytes differ from the file's", c.off, c.n)
		}
	}
	adviseHugePages(nil)
	adviseHugePages(make([]byte, 10))
}
