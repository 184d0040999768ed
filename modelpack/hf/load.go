package hf

import (
	"fmt"
	"github.com/moderuntime/mode/runtime/tensor"
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
	src, err := Open(dir)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	w := make(model.Weights)
	for _, sp := range src.cfg.Spec() {
		t, err := src.Read(sp.Name, 0, 0)
		if err != nil {
			return nil, err
		}
		w[sp.Name] = t
	}
	m := &model.Model{Config: src.cfg, Weights: w}
	if err := m.Validate(false); err != nil {
		return nil, fmt.Errorf("hf: %s: %w", dir, err)
	}
	return m, nil
}

// Source streams an HF checkpoint's tensors by canonical name, one at a
// time, so a model larger than memory can be packed.
type Source struct {
	dir     string
	cfg     model.Config
	st      *safetensors.Dir
	hfName  map[string]string // canonical -> checkpoint name
	parts   map[string]Part   // canonical -> rows of a fused checkpoint tensor
	derived map[string]derivedRef
	last    rawRows // the fused rows read last: gate and up share them
}

// Open reads config.json and the safetensors headers and checks every
// tensor name and shape against the config before any weight is read, so a
// wrong checkpoint fails fast.
func Open(dir string) (*Source, error) {
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
	src, err := p.open(st)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("hf: %s: %w", dir, err)
	}
	src.dir = dir
	return src, nil
}

// Config is the model's config.
func (s *Source) Config() model.Config { return s.cfg }

// Close releases the safetensors files.
func (s *Source) Close() error { return s.st.Close() }

// Read returns rows [row0, row0+rows) of the canonical tensor name (all of
// it when rows is 0) in its stored format, checked to be finite.
func (s *Source) Read(name string, row0, rows int) (*tensor.Tensor, error) {
	if pt, ok := s.parts[name]; ok {
		return s.readPart(name, pt, row0, rows)
	}
	if d, ok := s.derived[name]; ok {
		return s.readDerived(name, d, row0, rows)
	}
	h, ok := s.hfName[name]
	if !ok {
		return nil, fmt.Errorf("hf: %s: the model has no tensor %s", s.dir, name)
	}
	info, _ := s.st.Info(h)
	var t *tensor.Tensor
	var err error
	if rows == 0 {
		t, err = s.st.Read(h)
	} else {
		t, err = s.st.ReadRows(h, row0, rows)
	}
	if err != nil {
		return nil, err
	}
	if i, v, bad := tensor.FirstNonFinite(t); bad {
		return nil, fmt.Errorf("%s: tensor %q: element %d is %v", filepath.Base(info.File), h, i+row0*t.Cols(), v)
	}
	t.Name = name
	return t, nil
}

// open checks the checkpoint's names and shapes against the plan and the
// tensors the config cannot represent (accepted only when all zero).
func (p *plan) open(st *safetensors.Dir) (*Source, error) {
	hfName, zeroOnly, err := p.resolve(st.Names(), func(n string) (safetensors.Info, bool) { return st.Info(n) })
	if err != nil {
		return nil, err
	}
	for _, n := range zeroOnly {
		info, _ := st.Info(n)
		t, err := st.Read(n)
		if err != nil {
			return nil, err
		}
		if err := checkZero(filepath.Base(info.File), n, p.zeroOnly[n], t); err != nil {
			return nil, err
		}
	}
	return &Source{cfg: p.cfg, st: st, hfName: hfName, parts: p.parts, derived: p.derived}, nil
}

func checkZero(file, name, what string, t *tensor.Tensor) error {
	if i, v, bad := tensor.FirstNonFinite(t); bad {
		return fmt.Errorf("%s: tensor %q: element %d is %v", file, name, i, v)
	}
	if !allZero(t) {
		return fmt.Errorf("%s: tensor %q: the %s is not zero, and model.Config cannot represent it", file, name, what)
	}
	return nil
}

// resolve maps every canonical tensor to its checkpoint name, checking
// names, shapes and dtypes, and lists the present tensors the config
// cannot represent, which the caller must check are all zero.
func (p *plan) resolve(names []string, info func(string) (safetensors.Info, bool)) (hfName map[string]string, zeroOnly []string, err error) {
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
	}
	if p.arch == "gpt_oss" {
		if err := p.resolveGptOss(present, info); err != nil {
			return nil, nil, err
		}
	}
	if !p.native && !p.cfg.TiedOutput && !present["lm_head.weight"] {
		// transformers ties a missing head to the embeddings.
		p.cfg.TiedOutput = true
		delete(p.names, "lm_head.weight")
	}
	fused := p.partSources()
	for _, n := range names {
		if _, ok := p.names[n]; !ok && !p.ignore[n] && !p.ignoredPrefix(n) && p.zeroOnly[n] == "" && fused[n] == nil && !p.sources[n] {
			inf, _ := info(n)
			return nil, nil, fmt.Errorf("%s: tensor %q has no place in the %s model config.json describes", filepath.Base(inf.File), n, p.cfg.Arch)
		}
		if p.zeroOnly[n] != "" {
			zeroOnly = append(zeroOnly, n)
		}
	}
	hfName = make(map[string]string, len(p.names))
	for h, c := range p.names {
		hfName[c] = h
	}
	for h, shape := range fused {
		if !present[h] {
			return nil, nil, fmt.Errorf("missing tensor %q (shape %v)", h, shape)
		}
		inf, _ := info(h)
		if !slices.Equal(inf.Shape, shape) {
			return nil, nil, fmt.Errorf("%s: tensor %q: shape %v, want %v", filepath.Base(inf.File), h, inf.Shape, shape)
		}
		if _, err := inf.TensorDType(); err != nil {
			return nil, nil, err
		}
	}
	for _, sp := range p.cfg.Spec() {
		if _, ok := p.parts[sp.Name]; ok {
			continue
		}
		if _, ok := p.derived[sp.Name]; ok {
			continue // checked by resolveGptOss
		}
		h := hfName[sp.Name]
		if !present[h] {
			return nil, nil, fmt.Errorf("missing tensor %q (%s, shape %v)", h, sp.Name, sp.Shape)
		}
		inf, _ := info(h)
		if !sameShape(inf.Shape, sp.Shape) {
			return nil, nil, fmt.Errorf("%s: tensor %q: shape %v, want %v for %s", filepath.Base(inf.File), h, inf.Shape, sp.Shape, sp.Name)
		}
		if _, err := inf.TensorDType(); err != nil {
			return nil, nil, err
		}
	}
	return hfName, zeroOnly, nil
}

// Resolved is an HF checkpoint's layout: the config and, for every
// canonical tensor, where it is.
type Resolved struct {
	Config model.Config
	// Tensors maps canonical names to the checkpoint's tensor info, for
	// the tensors stored as they are or as rows of a fused tensor.
	Tensors map[string]safetensors.Info
	// Fused holds the canonical tensors that must be rearranged out of
	// fused checkpoint tensors (gpt-oss's experts and their biases), which
	// Tensors leaves out.
	Fused []Fused
	// ZeroOnly lists tensors the config cannot represent; they must be
	// checked to be all zero (CheckZero) before the layout is used.
	ZeroOnly []safetensors.Info
}

// Resolve maps a checkpoint, described by its config.json and the infos of
// its safetensors tensors, onto canonical names without reading weights.
// It is how `modelpack index` points into unmodified files.
func Resolve(configJSON []byte, infos []safetensors.Info) (*Resolved, error) {
	p, err := parseConfig(configJSON)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]safetensors.Info, len(infos))
	names := make([]string, 0, len(infos))
	for _, in := range infos {
		byName[in.Name] = in
		names = append(names, in.Name)
	}
	slices.Sort(names)
	hfName, zero, err := p.resolve(names, func(n string) (safetensors.Info, bool) { in, ok := byName[n]; return in, ok })
	if err != nil {
		return nil, err
	}
	r := &Resolved{Config: p.cfg, Tensors: map[string]safetensors.Info{}}
	if len(p.derived) > 0 {
		if r.Fused, err = p.fusedGroups(byName); err != nil {
			return nil, err
		}
	}
	for c, h := range hfName {
		r.Tensors[c] = byName[h]
	}
	for c, pt := range p.parts {
		in := byName[pt.Tensor]
		r.Tensors[c] = sub(in, pt.Row0, pt.Rows, []int{pt.Rows, pt.Shape[len(pt.Shape)-1]})
	}
	for _, n := range zero {
		r.ZeroOnly = append(r.ZeroOnly, byName[n])
	}
	return r, nil
}

// CheckZero reports an error unless t, the tensor info describes, is all
// zeros (see Resolved.ZeroOnly).
func CheckZero(info safetensors.Info, t *tensor.Tensor) error {
	return checkZero(filepath.Base(info.File), info.Name, "tensor model.Config cannot represent", t)
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
