package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/modelpack/source"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

// Input is an opened model ready to pack.
type Input struct {
	Source       source.Source
	Tokenizer    source.Tokenizer
	ChatTemplate string
	Kind         string // "hf", "gguf", "llama2c" or "pack"
	close        func() error
}

// Close releases the source's files.
func (in *Input) Close() error {
	if in.close == nil {
		return nil
	}
	return in.close()
}

// Open detects what src is and opens it. tokPath overrides where the
// tokenizer is read from ("" looks beside the model).
func Open(src, tokPath string) (*Input, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(src, "manifest.json")); err == nil {
			return openPack(src, tokPath)
		}
		return openHF(src, tokPath)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	magic := make([]byte, 4)
	_, err = io.ReadFull(f, magic)
	f.Close()
	if err == nil && bytes.Equal(magic, []byte("GGUF")) {
		return openGGUF(src)
	}
	return openLlama2C(src, tokPath)
}

func openHF(dir, tokPath string) (*Input, error) {
	s, err := hf.Open(dir)
	if err != nil {
		return nil, err
	}
	if tokPath == "" {
		tokPath = filepath.Join(dir, "tokenizer.json")
	}
	tj, err := os.ReadFile(tokPath)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	tc, err := os.ReadFile(filepath.Join(filepath.Dir(tokPath), "tokenizer_config.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.Close()
		return nil, fmt.Errorf("tokenizer config: %w", err)
	}
	tok, err := tokenizer.LoadHF(tj, tc)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", tokPath, err)
	}
	cfg := s.Config()
	if tok.VocabSize() > cfg.Vocab {
		s.Close()
		return nil, fmt.Errorf("%s: tokenizer has %d tokens but the model's vocab_size is %d", tokPath, tok.VocabSize(), cfg.Vocab)
	}
	tmpl, err := chatTemplateFile(filepath.Join(filepath.Dir(tokPath), "chat_template.jinja"))
	if err != nil {
		s.Close()
		return nil, err
	}
	if tmpl == "" {
		tmpl = tok.ChatTemplate()
	}
	return &Input{
		Source:       s,
		Tokenizer:    source.Tokenizer{Kind: "hf", File: tj, Config: tc, AddBOS: tok.AddsBOS() && cfg.BOS >= 0},
		ChatTemplate: tmpl,
		Kind:         "hf",
		close:        s.Close,
	}, nil
}

// maxTemplate bounds chat_template.jinja; real templates are tens of KB.
const maxTemplate = 4 << 20

// chatTemplateFile reads chat_template.jinja, which newer HF repositories
// (gpt-oss's among them) ship instead of tokenizer_config.json's
// chat_template; transformers prefers it when both exist, and so does
// this. "" when there is none.
func chatTemplateFile(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTemplate+1))
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	if len(b) > maxTemplate {
		return "", fmt.Errorf("chat template %s is larger than %d bytes", path, maxTemplate)
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("chat template %s is not UTF-8", path)
	}
	return string(b), nil
}

func openLlama2C(path, tokPath string) (*Input, error) {
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
	b, err := os.ReadFile(tokPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if _, err := tokenizer.LoadLlama2C(bytes.NewReader(b), m.Config.Vocab); err != nil {
		return nil, fmt.Errorf("%s: %w", tokPath, err)
	}
	return &Input{Source: source.ModelSource{M: m}, Tokenizer: source.Tokenizer{Kind: "llama2c", File: b, AddBOS: true}, Kind: "llama2c"}, nil
}

// openPack opens a pack directory as a source, to store it again in other
// formats (a distilled f32 student at q4_0, say). The pack is loaded whole,
// every shard hash-checked, so unlike the other sources it must fit in
// memory.
func openPack(dir, tokPath string) (*Input, error) {
	if tokPath != "" {
		return nil, fmt.Errorf("%s: a tokenizer file does not apply to a pack: its tokenizer is in the manifest", dir)
	}
	p, err := loader.OpenWeights(context.Background(), dir, shard.HTTPOptions{})
	if err != nil {
		return nil, err
	}
	defer p.Close() // loaded whole below: nothing is fetched after
	m, err := p.Whole(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	file, config, err := p.TokenizerFiles()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	mt := p.Manifest.Tokenizer
	return &Input{
		Source:       source.ModelSource{M: m},
		Tokenizer:    source.Tokenizer{Kind: mt.Kind, File: file, Config: config, AddBOS: mt.AddBOS},
		ChatTemplate: p.Manifest.ChatTemplate,
		Kind:         "pack",
	}, nil
}
