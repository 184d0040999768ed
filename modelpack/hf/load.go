package hf

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/runtime/model"
)

// Load reads the model in an HF directory: config.json and either
// model.safetensors or the shards of model.safetensors.index.json. Every
// tensor is read, checked for shape and finiteness, and stored under its
// canonical name; the result passes Model.Validate(false).
func Load(dir string) (*model.Model, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("hf: %w", err)
	}
	p, err := parseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("hf: %s: %w", dir, err)
	}
	st, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("hf: %w", err)
	}
	defer st.Close()
	m, err := p.load(st)
	if err != nil {
		return nil, fmt.Errorf("hf: %s: %w", dir, err)
	}
	return m, nil
}

// load checks the checkpoint's names against the plan before reading any
// data, so a wrong checkpoint fails fast, then reads tensor by tensor.
func (p *plan) load(st *safetensors.Dir) (*model.Model, error) {
	names := st.Names()
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
	}
	if !p.native && !p.cfg.TiedOutput && !present["lm_head.weight"] {
		// transformers ties a missing head to the embeddings.
		p.cfg.TiedOutput = true
		delete(p.names, "lm_head.weight")
	}
	for _, n := range names {
		if _, ok := p.names[n]; !ok && !p.ignore[n] && p.zeroOnly[n] == "" {
			info, _ := st.Info(n)
			return nil, fmt.Errorf("%s: tensor %q has no place in the %s model config.json describes", filepath.Base(info.File), n, p.cfg.Arch)
		}
	}
	hfName := make(map[string]string, len(p.names))
	for h, c := range p.names {
		hfName[c] = h
	}
	specs := p.cfg.Spec()
	shapes := make(map[string][]int, len(specs))
	for _, sp := range specs {
		shapes[sp.Name] = sp.Shape
		if !present[hfName[sp.Name]] {
			return nil, fmt.Errorf("missing tensor %q (%s, shape %v)", hfName[sp.Name], sp.Name, sp.Shape)
		}
	}
	w := make(model.Weights, len(specs))
	for _, n := range names {
		canon, mapped := p.names[n]
		what := p.zeroOnly[n]
		if !mapped && what == "" {
			continue // ignored
		}
		info, _ := st.Info(n)
		if mapped && !sameShape(info.Shape, shapes[canon]) {
			return nil, fmt.Errorf("%s: tensor %q: shape %v, want %v for %s", filepath.Base(info.File), n, info.Shape, shapes[canon], canon)
		}
		t, err := st.Read(n)
		if err != nil {
			return nil, err
		}
		if i, v, bad := firstNonFinite(t); bad {
			return nil, fmt.Errorf("%s: tensor %q: element %d is %v", filepath.Base(info.File), n, i, v)
		}
		if !mapped {
			if !allZero(t) {
				return nil, fmt.Errorf("%s: tensor %q: the %s is not zero, and model.Config cannot represent it", filepath.Base(info.File), n, what)
			}
			continue
		}
		t.Name = canon
		w[canon] = t
	}
	m := &model.Model{Config: p.cfg, Weights: w}
	if err := m.Validate(false); err != nil {
		return nil, err
	}
	return m, nil
}

// sameShape compares shapes as Model.Validate does: leading 1s do not
// count, so a [1, D] gate matches [D].
func sameShape(a, b []int) bool {
	squeeze := func(s []int) []int {
		for len(s) > 1 && s[0] == 1 {
			s = s[1:]
		}
		return s
	}
	return slices.Equal(squeeze(a), squeeze(b))
}

// Paths names the files of an HF model directory that neighbouring
// loaders (the tokenizer, generation defaults) read.
type Paths struct {
	Dir    string
	Config string // config.json, always set
	// These are set only when the file exists.
	Tokenizer        string // tokenizer.json
	TokenizerConfig  string // tokenizer_config.json
	GenerationConfig string // generation_config.json
}

// FindPaths reports the files of the HF model directory dir.
func FindPaths(dir string) Paths {
	ifExists := func(name string) string {
		path := filepath.Join(dir, name)
		if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
			return path
		}
		return ""
	}
	return Paths{
		Dir:              dir,
		Config:           filepath.Join(dir, "config.json"),
		Tokenizer:        ifExists("tokenizer.json"),
		TokenizerConfig:  ifExists("tokenizer_config.json"),
		GenerationConfig: ifExists("generation_config.json"),
	}
}
