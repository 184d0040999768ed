package synth

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/moderuntime/mode/runtime/tensor"
)

// maxBytes bounds a synthetic model's weights. They are generated one
// tensor at a time while the file is written, so memory is not the limit;
// this only catches a mistyped size before it fills the disk.
const maxBytes = 64 << 30

// Write writes the model opts describes into dir, creating it if needed:
// config.json, generation_config.json, the weights (model.safetensors, or
// shards and model.safetensors.index.json), tokenizer.json and
// tokenizer_config.json.
// Checkpoint files of an earlier Write in dir are replaced.
func Write(dir string, opts Options) error {
	o, err := opts.resolve()
	if err != nil {
		return err
	}
	tok := newTokenizer(o.Vocab)
	var config any
	var layout []tensorSpec
	if o.Arch == "mode" {
		cfg := modeConfig(&o, tok.bos, tok.eos)
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
		dtype, _ := torchDType(o.DType)
		config = modeFile{Architectures: []string{"ModeForCausalLM"}, ModelType: "mode", TorchDType: dtype, Mode: cfg}
		layout = modeLayout(&cfg)
	} else {
		config = hfConfig(&o, tok.bos, tok.eos)
		layout = hfLayout(&o)
	}
	var bytes int64
	for _, s := range layout {
		n := int64(o.DType.ElemSize())
		for _, d := range s.shape {
			n *= int64(d)
		}
		bytes += n
	}
	if bytes > maxBytes {
		return fmt.Errorf("synth: the %s model would take %d bytes; synth writes at most %d", o.Arch, bytes, maxBytes)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if err := removeCheckpoint(dir); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    any
	}{
		{"config.json", config},
		{"tokenizer.json", tok.tokenizerJSON()},
		{"tokenizer_config.json", tok.config(o.MaxSeq)},
		{"generation_config.json", generationConfig(tok.bos, tok.eos)},
	} {
		if err := writeJSON(filepath.Join(dir, f.name), f.v); err != nil {
			return err
		}
	}
	ts := make([]lazyTensor, len(layout))
	for i, s := range layout {
		ts[i] = lazyTensor{
			desc: &tensor.Tensor{Name: s.name, DType: o.DType, Shape: s.shape},
			fill: func() ([]byte, error) { return generate(s, o.Seed, o.DType, o.Layers).Data, nil },
		}
		if s.mxfp4 != "" {
			ts[i].u8 = true
			ts[i].fill = func() ([]byte, error) { return generateMXFP4(s, o.Seed, o.Layers) }
		}
	}
	return writeWeights(dir, ts, o.MaxShardBytes, o.Files)
}

// generationConfig is generation_config.json as transformers writes it
// from a model config: the special token ids.
func generationConfig(bos, eos int) map[string]any {
	return map[string]any{"_from_model_config": true, "bos_token_id": bos, "eos_token_id": eos}
}
