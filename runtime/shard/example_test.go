package shard_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/shard"
)

// A shard made of two ranges of one local file, read and verified.
func ExampleFetch() {
	dir, err := os.MkdirTemp("", "shard-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "weights.bin"), []byte("header|hello, |skip|shard"), 0o644); err != nil {
		log.Fatal(err)
	}

	sum := sha256.Sum256([]byte("hello, shard"))
	s := &manifest.Shard{
		ID:     "core",
		SHA256: hex.EncodeToString(sum[:]),
		Size:   12,
		Pieces: []manifest.Piece{
			{File: "weights.bin", Offset: 7, Length: 7},
			{File: "weights.bin", Offset: 20, Length: 5},
		},
	}
	b, err := shard.Fetch(context.Background(), shard.NewDir(dir), s)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", b)

	s.SHA256 = hex.EncodeToString(make([]byte, 32)) // a wrong hash
	_, err = shard.Fetch(context.Background(), shard.NewDir(dir), s)
	fmt.Println(err != nil)
	// Output:
	// hello, shard
	// true
}
