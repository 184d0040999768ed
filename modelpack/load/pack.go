package load

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/shard"
)

// IsPack reports whether location names a pack rather than a source model:
// an http(s) URL, a manifest (.json) path or a directory holding
// manifest.json, any of them with a pinned hash (shard.PinPrefix).
func IsPack(location string) bool {
	if strings.Contains(location, shard.PinPrefix) {
		return true // only a pack is pinned; a malformed pin is the loader's to report
	}
	if strings.HasPrefix(location, "http://") || strings.HasPrefix(location, "https://") || strings.HasSuffix(location, ".json") {
		return true
	}
	_, err := os.Stat(filepath.Join(location, "manifest.json"))
	return err == nil
}

// Pack loads the pack at location whole — every routed expert included,
// each hash-checked like a lazy fetch — for tools that compute over the
// full model rather than stream it.
func Pack(ctx context.Context, location string, o shard.HTTPOptions) (*Loaded, error) {
	p, err := loader.Open(ctx, location, o)
	if err != nil {
		return nil, err
	}
	defer p.Close() // the model is whole: the pack fetches nothing more
	m, err := p.Whole(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", location, err)
	}
	return &Loaded{Model: m, Tokenizer: p.Tokenizer, AddBOS: p.AddBOS, ChatTemplate: p.Manifest.ChatTemplate}, nil
}

// Any loads location whole, whether a pack (see IsPack) or a source model
// (see Open).
func Any(ctx context.Context, location, tokPath string) (*Loaded, error) {
	if IsPack(location) {
		if tokPath != "" {
			return nil, fmt.Errorf("%s: a tokenizer file does not apply to a pack: its tokenizer is in the manifest", location)
		}
		return Pack(ctx, location, shard.HTTPOptions{})
	}
	return Open(location, tokPath)
}
