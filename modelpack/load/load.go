package load

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

// Loaded is a model ready to run.
type Loaded struct {
	Model     *model.Model
	Tokenizer tokenizer.Tokenizer
	// AddBOS says whether prompts start with the BOS token: always for
	// llama2.c (run.c does), for HF when the tokenizer's post-processor adds it.
	AddBOS bool
	// ChatTemplate is the Jinja chat template, "" when the model has none.
	ChatTemplate string
}

// Open loads path. tokPath overrides the tokenizer file; "" looks beside the
// model (tokenizer.json in an HF directory; tok512.bin or tokenizer.bin
// beside a llama2.c checkpoint).
func Open(path, tokPath string) (*Loaded, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if st.IsDir() {
		return openHF(path, tokPath)
	}
	return openLlama2C(path, tokPath)
}

func openHF(dir, tokPath string) (*Loaded, error) {
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		return nil, fmt.Errorf("%s: not a model directory (no config.json): %w", dir, err)
	}
	m, err := hf.Load(dir)
	if err != nil {
		return nil, err
	}
	if tokPath == "" {
		tokPath = filepath.Join(dir, "tokenizer.json")
	}
	tj, err := os.ReadFile(tokPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	tc, err := os.ReadFile(filepath.Join(filepath.Dir(tokPath), "tokenizer_config.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer config: %w", err)
	}
	tok, err := tokenizer.LoadHF(tj, tc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tokPath, err)
	}
	if tok.VocabSize() > m.Config.Vocab {
		return nil, fmt.Errorf("%s: tokenizer has %d tokens but the model's vocab_size is %d", tokPath, tok.VocabSize(), m.Config.Vocab)
	}
	return &Loaded{Model: m, Tokenizer: tok, AddBOS: tok.AddsBOS() && m.Config.BOS >= 0, ChatTemplate: tok.ChatTemplate()}, nil
}

func openLlama2C(path, tokPath string) (*Loaded, error) {
	m, err := llama2c.Load(path)
	if err != nil {
		return nil, err
	}
	if tokPath == "" {
		for _, name := range []string{"tok512.bin", "tokenizer.bin"} {
			p := filepath.Join(filepath.Dir(path), name)
			if _, err := os.Stat(p); err == nil {
				tokPath = p
				break
			}
		}
		if tokPath == "" {
			return nil, fmt.Errorf("%s: no tokenizer beside it (tok512.bin or tokenizer.bin); name one with -z", path)
		}
	}
	f, err := os.Open(tokPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	tok, err := tokenizer.LoadLlama2C(f, m.Config.Vocab)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tokPath, err)
	}
	return &Loaded{Model: m, Tokenizer: tok, AddBOS: true}, nil
}
