package hf_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/refcheck"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// writeGranite writes m (a testmodel granitemoe/granitemoeshared model) as
// transformers stores it, in bf16: each layer's experts fused into
// block_sparse_moe.input_linear [experts, 2·width, hidden] (gate rows,
// then up rows, as GraniteMoeMoE.forward chunks them) and output_linear
// [experts, hidden, width], the shared expert into shared_mlp.input_linear
// [2·width, hidden] and output_linear. The fusing here is written from
// modeling_granitemoe(shared).py, independently of the reader's slicing.
func writeGranite(t *testing.T, dir, arch string, m *model.Model) {
	t.Helper()
	c := &m.Config
	f32 := func(name string) []float32 {
		v, err := m.Weights[name].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	bf16 := func(name string, shape []int, v []float32) *tensor.Tensor {
		data := make([]byte, 2*len(v))
		for i, x := range v {
			b := tensor.F32ToBF16(x)
			data[2*i], data[2*i+1] = byte(b), byte(b>>8)
		}
		return &tensor.Tensor{Name: name, DType: tensor.BF16, Shape: shape, Data: data}
	}
	var ts []*tensor.Tensor
	add := func(name, canon string) {
		ts = append(ts, bf16(name, m.Weights[canon].Shape, f32(canon)))
	}
	add("model.embed_tokens.weight", model.NameEmbed)
	add("model.norm.weight", model.NameFinalNorm)
	for l := range c.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		n := func(s string) string { return model.LayerName(l, s) }
		add(p+"input_layernorm.weight", n("attn_norm"))
		add(p+"post_attention_layernorm.weight", n("ffn_norm"))
		for _, x := range []string{"q", "k", "v", "o"} {
			add(p+"self_attn."+x+"_proj.weight", n("w"+x))
		}
		add(p+"block_sparse_moe.router.layer.weight", n("router"))
		f := &c.FFN[l]
		var in, out []float32
		w := f.ExpertWidths[0]
		for e := range f.ExpertWidths {
			in = append(in, f32(model.ExpertName(l, e, "gate"))...)
			in = append(in, f32(model.ExpertName(l, e, "up"))...)
			out = append(out, f32(model.ExpertName(l, e, "down"))...)
		}
		E := len(f.ExpertWidths)
		ts = append(ts, bf16(p+"block_sparse_moe.input_linear.weight", []int{E, 2 * w, c.Dim}, in),
			bf16(p+"block_sparse_moe.output_linear.weight", []int{E, c.Dim, w}, out))
		if len(f.SharedWidths) == 1 {
			sw := f.SharedWidths[0]
			sin := append(f32(model.SharedName(l, 0, "gate")), f32(model.SharedName(l, 0, "up"))...)
			ts = append(ts, bf16(p+"shared_mlp.input_linear.weight", []int{2 * sw, c.Dim}, sin))
			add(p+"shared_mlp.output_linear.weight", model.SharedName(l, 0, "down"))
		}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), nil, ts...); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"model_type": arch, "architectures": []string{"GraniteMoeForCausalLM"},
		"hidden_size": c.Dim, "intermediate_size": c.FFN[0].ExpertWidths[0], "num_hidden_layers": c.Layers,
		"num_attention_heads": c.Heads, "num_key_value_heads": c.KVHeads, "vocab_size": c.Vocab,
		"max_position_embeddings": c.MaxSeq, "rms_norm_eps": c.NormEps, "rope_theta": c.RopeTheta,
		"tie_word_embeddings": true, "num_local_experts": len(c.FFN[0].ExpertWidths), "num_experts_per_tok": c.FFN[0].Router.TopK,
		"embedding_multiplier": c.EmbedScale, "attention_multiplier": c.AttnScale,
		"residual_multiplier": c.ResidualScale, "logits_scaling": c.LogitScale,
		"bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
	}
	if len(c.FFN[0].SharedWidths) == 1 {
		cfg["shared_intermediate_size"] = c.FFN[0].SharedWidths[0]
		cfg["architectures"] = []string{"GraniteMoeSharedForCausalLM"}
	}
	writeConfig(t, dir, cfg)
}

// TestGraniteHF loads hand-fused Granite checkpoints (bf16) and checks
// that every canonical tensor is the original's bf16 rounding, that the
// config carries the four multipliers, that `modelpack index`'s byte
// ranges (Resolve) point at the same bytes, and that the engine's logits
// equal the float64 reference at every decode position.
func TestGraniteHF(t *testing.T) {
	for _, arch := range []string{"granitemoe", "granitemoeshared"} {
		t.Run(arch, func(t *testing.T) {
			orig := testmodel.Random(testmodel.Family(arch, false), 5)
			dir := t.TempDir()
			writeGranite(t, dir, arch, orig)
			m, err := hf.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			c, w := m.Config, orig.Config
			if c.EmbedScale != w.EmbedScale || c.AttnScale != w.AttnScale || c.ResidualScale != w.ResidualScale || c.LogitScale != w.LogitScale {
				t.Errorf("multipliers %v %v %v %v, want %v %v %v %v", c.EmbedScale, c.AttnScale, c.ResidualScale, c.LogitScale,
					w.EmbedScale, w.AttnScale, w.ResidualScale, w.LogitScale)
			}
			if r := c.FFN[0].Router; !r.NormTopK || r.Scoring != model.Softmax || len(c.FFN[1].SharedWidths) != len(w.FFN[1].SharedWidths) {
				t.Errorf("ffn %+v router %+v", c.FFN[0], r)
			}
			for _, sp := range c.Spec() {
				got, err := m.Weights[sp.Name].Float32s()
				if err != nil {
					t.Fatal(err)
				}
				want, _ := orig.Weights[sp.Name].Float32s()
				for i := range want {
					if got[i] != math.Float32frombits(uint32(tensor.F32ToBF16(want[i]))<<16) {
						t.Fatalf("%s[%d] = %v, want bf16 of %v", sp.Name, i, got[i], want[i])
					}
				}
			}
			// index: the byte range of each part is the part's bytes
			raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
			st, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var infos []safetensors.Info
			for _, n := range st.Names() {
				in, _ := st.Info(n)
				infos = append(infos, in)
			}
			res, err := hf.Resolve(raw, infos)
			if err != nil {
				t.Fatal(err)
			}
			file, _ := os.ReadFile(filepath.Join(dir, "model.safetensors"))
			for _, name := range []string{model.ExpertName(1, 3, "up"), model.ExpertName(0, 2, "down"), model.SharedName(1, 0, "up")} {
				in, ok := res.Tensors[name]
				if !ok {
					if strings.Contains(name, "shared") && arch == "granitemoe" {
						continue
					}
					t.Fatalf("index has no %s", name)
				}
				if !bytes.Equal(file[in.FileOffset:in.FileOffset+in.Size()], m.Weights[name].Data) {
					t.Errorf("index range of %s holds other bytes than the loaded tensor", name)
				}
			}
			// the bf16 model through the engine against the float64 reference
			ids := []int{1, 5, 17, 42, 3, 96, 11}
			refcheck.Decode(t, "", m, m, ids)
		})
	}
}

// TestGraniteConfigErrors: values the engine cannot run are refused with
// a sentence naming the key.
func TestGraniteConfigErrors(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"model_type": "granitemoe", "hidden_size": 32, "intermediate_size": 16, "num_hidden_layers": 2,
			"num_attention_heads": 4, "vocab_size": 97, "num_local_experts": 4, "num_experts_per_tok": 2}
	}
	for _, tt := range []struct {
		key  string
		v    any
		want string
	}{
		{"attention_multiplier", -1.0, "attention_multiplier -1 must be a positive finite number"},
		{"logits_scaling", 0.0, "logits_scaling 0 must be a positive finite number"},
		{"embedding_multiplier", "x", "embedding_multiplier is a JSON string"},
		{"rope_scaling", map[string]any{"type": "su", "factor": 2.0}, `rope_scaling type "su" is not supported`},
	} {
		c := base()
		c[tt.key] = tt.v
		raw, _ := json.Marshal(c)
		if _, _, err := hf.LoadConfig(raw); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s = %v: error %v, want one containing %q", tt.key, tt.v, err, tt.want)
		}
	}
	raw, _ := json.Marshal(base())
	c, _, err := hf.LoadConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if c.AttnScale != 1 || c.EmbedScale != 1 || c.ResidualScale != 1 || c.LogitScale != 1 || c.BOS != 1 {
		t.Errorf("GraniteMoeConfig defaults: %+v", c)
	}
}
