package tokenizer

import (
	"bytes"
	"fmt"
)

// Load parses a tokenizer file of the given kind: "llama2c" (the llama2.c
// tokenizer .bin, with vocab tokens) or "hf" (tokenizer.json, with the
// optional tokenizer_config.json in config). Packs and importers name
// tokenizers this way.
func Load(kind string, file, config []byte, vocab int) (Tokenizer, error) {
	switch kind {
	case "llama2c":
		return LoadLlama2C(bytes.NewReader(file), vocab)
	case "hf":
		return LoadHF(file, config)
	}
	return nil, fmt.Errorf("tokenizer kind %q is neither llama2c nor hf", kind)
}
