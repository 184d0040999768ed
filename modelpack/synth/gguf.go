package synth

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/moderuntime/mode/modelpack/gguf"
	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// GGUF model ids: a SentencePiece vocabulary fixes <unk>, <s> and </s> at
// 0 to 2, the byte tokens at 3 to 258.
const (
	ggufBOS = 1
	ggufEOS = 2
)

// WriteGGUF writes the model opts describes as a GGUF file at path that
// llama.cpp loads (see gguf.WriteModel), every matrix in typ. The weights
// are Write's for the same options, value for value before rounding to
// typ (the q and k rows of a "llama" file are permuted, which changes no
// output); the tokenizer is a SentencePiece vocabulary of exactly
// opts.Vocab tokens (SentenceVocab), since llama.cpp needs one token per
// embedding row. Each tensor is generated as it is written.
func WriteGGUF(path string, opts Options, typ gguf.GGMLType) (err error) {
	o, err := opts.resolve()
	if err != nil {
		return err
	}
	if o.Arch != "llama" && o.Arch != "mixtral" && o.Arch != "olmoe" && o.Arch != "granitemoe" && o.Arch != "granitemoeshared" && o.Arch != "gpt_oss" {
		return fmt.Errorf("synth: GGUF: arch %s is not written (llama, mixtral, olmoe, granitemoe, granitemoeshared, gpt_oss)", o.Arch)
	}
	if o.DType != tensor.F32 {
		return fmt.Errorf("synth: GGUF: the values are generated in f32 and written as %s; DType %s does not apply", typ, o.DType)
	}
	if o.Arch == "gpt_oss" {
		return writeGptOssGGUF(path, o, typ)
	}
	cfg, names, err := GGUFConfig(o)
	if err != nil {
		return err
	}
	parts, err := ggufParts(o)
	if err != nil {
		return err
	}
	specs, byHF := map[string]tensorSpec{}, map[string]tensorSpec{}
	for _, s := range hfLayout(&o) {
		specs[names[s.name]] = s
		byHF[s.name] = s
	}
	read := func(name string) ([]float32, error) {
		if pt, ok := parts[name]; ok { // rows of a fused tensor (Granite's experts)
			s, ok := byHF[pt.Tensor]
			if !ok {
				return nil, fmt.Errorf("synth: no tensor %s", pt.Tensor)
			}
			cols := pt.Shape[len(pt.Shape)-1]
			return values(s, o.Seed, o.Layers)[pt.Row0*cols : (pt.Row0+pt.Rows)*cols], nil
		}
		s, ok := specs[name]
		if !ok {
			return nil, fmt.Errorf("synth: no tensor %s", name)
		}
		return values(s, o.Seed, o.Layers), nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("synth: %w", cerr)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	mo := gguf.ModelOptions{Type: typ, Vocab: SentenceVocab(o.Vocab), Name: "synthetic " + o.Arch}
	if err := gguf.WriteModel(bw, cfg, read, mo); err != nil {
		return err
	}
	return bw.Flush()
}

// writeGptOssGGUF writes gpt_oss through the HF checkpoint Write makes
// (its experts are fused, interleaved and, with MXFP4, block-coded; the
// HF reader takes them apart), read back whole: synthetic models are
// small. The experts are written in MXFP4 (gguf.WriteModel), which keeps
// MXFP4 checkpoint values exactly; YaRN is written rounded as llama.cpp
// computes it (gguf.ModelOptions.RoundYaRN).
func writeGptOssGGUF(path string, o Options, typ gguf.GGMLType) (err error) {
	if o.Vocab < 260 {
		return fmt.Errorf("synth: GGUF: Vocab %d leaves no room beside the 259 special and byte tokens", o.Vocab)
	}
	dir, err := os.MkdirTemp("", "synth-gptoss-")
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := Write(dir, o); err != nil {
		return err
	}
	m, err := hf.Load(dir)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	read := func(name string) ([]float32, error) {
		t, ok := m.Weights[name]
		if !ok {
			return nil, fmt.Errorf("synth: no tensor %s", name)
		}
		return t.Float32s()
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("synth: %w", cerr)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	mo := gguf.ModelOptions{Type: typ, Vocab: SentenceVocab(o.Vocab), Name: "synthetic " + o.Arch, RoundYaRN: true}
	if err := gguf.WriteModel(bw, m.Config, read, mo); err != nil {
		return err
	}
	return bw.Flush()
}

// GGUFConfig is the model.Config of the HF-family model opts describes,
// with WriteGGUF's special tokens, and the map from the names Write gives
// its tensors to canonical ones.
func GGUFConfig(opts Options) (model.Config, map[string]string, error) {
	o, err := opts.resolve()
	if err != nil {
		return model.Config{}, nil, err
	}
	if o.Vocab < 260 {
		return model.Config{}, nil, fmt.Errorf("synth: GGUF: Vocab %d leaves no room beside the 259 special and byte tokens", o.Vocab)
	}
	raw, err := json.Marshal(hfConfig(&o, ggufBOS, ggufEOS))
	if err != nil {
		return model.Config{}, nil, fmt.Errorf("synth: %w", err)
	}
	cfg, hfNames, err := hf.LoadConfig(raw)
	if err != nil {
		return model.Config{}, nil, fmt.Errorf("synth: %w", err)
	}
	names := make(map[string]string, len(hfNames))
	for h, c := range hfNames {
		names[h] = c
	}
	return cfg, names, nil
}

// ggufParts is hf.Parts for the config.json Write writes for o.
func ggufParts(o Options) (map[string]hf.Part, error) {
	raw, err := json.Marshal(hfConfig(&o, ggufBOS, ggufEOS))
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	parts, err := hf.Parts(raw)
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	return parts, nil
}

// SentenceVocab is a SentencePiece ("llama") vocabulary of n tokens laid
// out as Llama's: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>,
// then printable pieces — ASCII characters, "▁"-prefixed letters, then
// letter pairs and triples with and without "▁" — scored so that shorter
// pieces come first. Every token is valid UTF-8 (browsers' llama.cpp
// builds reject others) and unique.
func SentenceVocab(n int) gguf.Vocab {
	add := true
	v := gguf.Vocab{Model: "llama", BOS: ggufBOS, EOS: ggufEOS, EOT: -1, EOM: -1, UNK: 0, PAD: -1, AddBOS: &add}
	push := func(tok string, typ int32) {
		if len(v.Tokens) < n {
			v.Tokens = append(v.Tokens, tok)
			v.TokenTypes = append(v.TokenTypes, typ)
			v.Scores = append(v.Scores, 0)
		}
	}
	push("<unk>", 2)
	push("<s>", 3)
	push("</s>", 3)
	for b := range 256 {
		push(fmt.Sprintf("<0x%02X>", b), 6)
	}
	const lower = "abcdefghijklmnopqrstuvwxyz"
	var pieces []string
	pieces = append(pieces, "▁")
	for c := '!'; c <= '~'; c++ {
		pieces = append(pieces, string(c))
	}
	for _, c := range lower + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" {
		pieces = append(pieces, "▁"+string(c))
	}
	for _, a := range lower {
		for _, b := range lower {
			pieces = append(pieces, string(a)+string(b), "▁"+string(a)+string(b))
		}
	}
	for _, a := range lower {
		for _, b := range lower {
			for _, c := range lower {
				pieces = append(pieces, string(a)+string(b)+string(c), "▁"+string(a)+string(b)+string(c))
			}
		}
	}
	for i, p := range pieces {
		if len(v.Tokens) == n {
			break
		}
		push(p, 1)
		v.Scores[len(v.Scores)-1] = -float32(i)
	}
	for i := 0; len(v.Tokens) < n; i++ { // beyond 35,000 pieces: numbered ones
		push(fmt.Sprintf("▁w%d", i), 1)
		v.Scores[len(v.Scores)-1] = -float32(len(pieces) + i)
	}
	return v
}
