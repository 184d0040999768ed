package load

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestGptOssPack imports a synthetic MXFP4 gpt-oss checkpoint into a q8_0
// pack: the experts stay MXFP4 byte for byte, the biases f32, and the pack
// run with experts fetched lazily gives the logits of the checkpoint at
// q8_0 loaded whole, at every position past the sliding window.
func TestGptOssPack(t *testing.T) {
	src := filepath.Join(t.TempDir(), "m")
	if err := synth.Write(src, synth.Default("gpt_oss")); err != nil {
		t.Fatal(err)
	}
	in, err := importer.Open(src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dir := filepath.Join(t.TempDir(), "pack")
	if _, err := pack.Write(dir, in.Source, in.Tokenizer, in.ChatTemplate, pack.Options{Quant: tensor.Q8_0}); err != nil {
		t.Fatal(err)
	}
	want, err := Open(src, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.Open(context.Background(), dir, shard.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Model.Weights[model.LayerName(0, "expert_up_bias")].DType; d != tensor.F32 {
		t.Errorf("expert bias stored as %v", d)
	}
	ts, err := p.LoadExpert(context.Background(), 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 3 {
		t.Fatalf("LoadExpert gave %d tensors for a plain expert, want gate, up, down", len(ts))
	}
	for i, x := range ts {
		name := model.ExpertName(1, 2, []string{"gate", "up", "down"}[i])
		w := want.Model.Weights[name]
		if x.DType != tensor.MXFP4 || w.DType != tensor.MXFP4 || !slices.Equal(x.Data, w.Data) {
			t.Fatalf("%s: pack has %v, checkpoint %v, or the bytes differ", name, x.DType, w.DType)
		}
	}
	// The checkpoint with the pack's dense matrices in q8_0.
	ref := &model.Model{Config: want.Model.Config, Weights: model.Weights{}}
	for name, w := range want.Model.Weights {
		if len(w.Shape) == 2 && w.DType == tensor.F32 && w.Shape[0] > 1 && !hasSuffix(name, "_bias") && !hasSuffix(name, ".router") {
			if w, err = tensor.Quantize(w, tensor.Q8_0); err != nil {
				t.Fatal(err)
			}
		}
		ref.Weights[name] = w
	}
	a, err := engine.New(cpu.New(cpu.Options{Exact: true}), ref, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := engine.New(cpu.New(cpu.Options{Exact: true}), p.Model, engine.Options{Experts: p})
	if err != nil {
		t.Fatal(err)
	}
	for pos := range 20 {
		id := (pos*13 + 3) % ref.Config.Vocab
		x, err := a.Forward(context.Background(), []int{id})
		if err != nil {
			t.Fatal(err)
		}
		x = slices.Clone(x)
		y, err := b.Forward(context.Background(), []int{id})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(x, y) {
			t.Fatalf("pos %d: the pack's logits differ from the checkpoint's", pos)
		}
	}
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }
