package gguf

import (
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/moderuntime/mode/internal/refcheck"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// deepSeekGGUF encodes m as llama.cpp's convert_hf_to_gguf.py writes a
// DeepSeek-V2/V3 checkpoint (arch deepseek2, attn_kv_b unsplit), with
// metadata written from llama.cpp's LLM_KV names; f32 tensors.
func deepSeekGGUF(t testing.TB, m *model.Model) []byte {
	t.Helper()
	c := &m.Config
	ml := c.MLA
	f := &c.FFN[1]
	r := f.Router
	s := c.RopeScale
	k := func(suffix string, v Value) KV { return KV{Key: "deepseek2." + suffix, Value: v} }
	u := func(x int) Value { return Scalar(uint32(x)) }
	gating := uint32(1)
	if r.Scoring == model.Sigmoid {
		gating = 2
	}
	kv := []KV{
		{Key: "general.architecture", Value: Scalar("deepseek2")},
		k("context_length", u(c.MaxSeq)), k("embedding_length", u(c.Dim)), k("block_count", u(c.Layers)),
		k("feed_forward_length", u(c.FFN[0].SharedWidths[0])), k("expert_feed_forward_length", u(f.ExpertWidths[0])),
		k("attention.head_count", u(c.Heads)), k("attention.head_count_kv", u(c.Heads)),
		k("attention.key_length", u(c.HeadDim)), k("attention.value_length", u(ml.VDim)),
		k("attention.layer_norm_rms_epsilon", Scalar(c.NormEps)), k("rope.freq_base", Scalar(float32(c.RopeTheta))),
		k("rope.dimension_count", u(ml.RopeDim)), k("attention.kv_lora_rank", u(ml.KVLoraRank)),
		k("expert_count", u(len(f.ExpertWidths))), k("expert_used_count", u(r.TopK)),
		k("expert_shared_count", u(f.SharedWidths[0]/f.ExpertWidths[0])), k("leading_dense_block_count", u(1)),
		k("expert_weights_scale", Scalar(r.Scale())), k("expert_weights_norm", Scalar(r.NormTopK)), k("expert_gating_func", Scalar(gating)),
		k("rope.scaling.type", Scalar("yarn")), k("rope.scaling.factor", Scalar(float32(s.Factor))),
		k("rope.scaling.original_context_length", u(s.OrigMaxPosition)),
		k("rope.scaling.yarn_log_multiplier", Scalar(float32(0.1*s.MscaleAllDim))),
	}
	if ml.QLoraRank > 0 {
		kv = append(kv, k("attention.q_lora_rank", u(ml.QLoraRank)))
	}
	if r.Groups > 0 {
		kv = append(kv, k("expert_group_count", u(r.Groups)), k("expert_group_used_count", u(r.TopKGroups)))
	}
	vals := func(name string) []float32 {
		v, err := m.Weights[name].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var ts []WTensor
	add := func(name, canon string) {
		ts = append(ts, WTensor{Name: name, Type: TypeF32, Dims: reversed(m.Weights[canon].Shape), Values: vals(canon)})
	}
	add("token_embd.weight", model.NameEmbed)
	add("output_norm.weight", model.NameFinalNorm)
	add("output.weight", model.NameOutput)
	for l := range c.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		n := func(s string) string { return model.LayerName(l, s) }
		add(p+"attn_norm.weight", n("attn_norm"))
		add(p+"ffn_norm.weight", n("ffn_norm"))
		if ml.QLoraRank > 0 {
			add(p+"attn_q_a.weight", n("wq_a"))
			add(p+"attn_q_a_norm.weight", n("q_a_norm"))
			add(p+"attn_q_b.weight", n("wq_b"))
		} else {
			add(p+"attn_q.weight", n("wq"))
		}
		add(p+"attn_kv_a_mqa.weight", n("wkv_a"))
		add(p+"attn_kv_a_norm.weight", n("kv_a_norm"))
		add(p+"attn_kv_b.weight", n("wkv_b"))
		add(p+"attn_output.weight", n("wo"))
		ff := &c.FFN[l]
		if !ff.Sparse() {
			for _, x := range []string{"gate", "up", "down"} {
				add(p+"ffn_"+x+".weight", model.SharedName(l, 0, x))
			}
			continue
		}
		add(p+"ffn_gate_inp.weight", n("router"))
		if ff.Router.SelectionBias {
			add(p+"exp_probs_b.bias", n("router_bias"))
		}
		for _, x := range []string{"gate", "up", "down"} {
			var stack []float32
			for e := range ff.ExpertWidths {
				stack = append(stack, vals(model.ExpertName(l, e, x))...)
			}
			sh := m.Weights[model.ExpertName(l, 0, x)].Shape
			ts = append(ts, WTensor{Name: p + "ffn_" + x + "_exps.weight", Type: TypeF32, Dims: []int{sh[1], sh[0], len(ff.ExpertWidths)}, Values: stack})
			add(p+"ffn_"+x+"_shexp.weight", model.SharedName(l, 0, x))
		}
	}
	return encode(t, kv, ts)
}

// ggufModel reads every canonical tensor of f through Sources.
func ggufModel(t *testing.T, f *File) *model.Model {
	t.Helper()
	cfg, err := Config(f)
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := Sources(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &model.Model{Config: cfg, Weights: model.Weights{}}
	for _, s := range srcs {
		raw, err := f.ReadRaw(s.Tensor)
		if err != nil {
			t.Fatal(err)
		}
		if s.Expert >= 0 {
			if raw, err = ExpertSlice(raw, s.Expert); err != nil {
				t.Fatal(err)
			}
		}
		v, err := DequantizeF32(raw)
		if err != nil {
			t.Fatal(err)
		}
		m.Weights[s.Canonical] = tensor.FromF32(s.Canonical, s.Shape, v)
	}
	return m
}

// TestDeepSeekGGUF reads deepseek2 files of the V2-Lite-shaped family
// (q_proj, greedy softmax routing) and the V3-shaped one (q bottleneck,
// sigmoid, exp_probs_b, groups) with mscale = mscale_all_dim, as the
// released models have and llama.cpp assumes: the config must be the
// family's and the logits equal the float64 reference at every position.
func TestDeepSeekGGUF(t *testing.T) {
	for _, name := range []string{"deepseek_v2-lite", "deepseek_v3"} {
		t.Run(name, func(t *testing.T) {
			cfg := testmodel.Family(name, false)
			cfg.RopeScale.Mscale = cfg.RopeScale.MscaleAllDim
			orig := testmodel.Random(cfg, 3)
			m := ggufModel(t, parse(t, deepSeekGGUF(t, orig)))
			c := m.Config
			wantScale := *cfg.RopeScale
			wantScale.AttnFactor = 1 // llama.cpp's deepseek2 leaves cos and sin unscaled
			if !reflect.DeepEqual(c.MLA, cfg.MLA) || !reflect.DeepEqual(c.FFN[0], cfg.FFN[0]) || c.RopeStyle != cfg.RopeStyle ||
				math.Abs(c.RopeScale.MscaleAllDim-wantScale.MscaleAllDim) > 1e-6 || c.RopeScale.AttnFactor != 1 {
				t.Fatalf("config\n%+v\nwant\n%+v", c, cfg)
			}
			for l := 1; l < c.Layers; l++ {
				got, want := *c.FFN[l].Router, *cfg.FFN[l].Router
				got.Fallback, want.Fallback = 0, 0
				if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(c.FFN[l].SharedWidths, cfg.FFN[l].SharedWidths) {
					t.Fatalf("layer %d router %+v, want %+v", l, got, want)
				}
			}
			ids := []int{1, 5, 17, 42, 3, 96, 11, 64}
			refcheck.Decode(t, "", m, orig, ids)
		})
	}
}

// TestDeepSeekGGUFRefusals: what llama.cpp's deepseek2 files may hold that
// the engine does not compute is refused naming the key.
func TestDeepSeekGGUFRefusals(t *testing.T) {
	cfg := testmodel.Family("deepseek_v3", false)
	cfg.RopeScale.Mscale = cfg.RopeScale.MscaleAllDim
	good := deepSeekGGUF(t, testmodel.Random(cfg, 3))
	f := parse(t, good)
	for _, tt := range []struct {
		key  string
		v    Value
		want string
	}{
		{"deepseek2.expert_gating_func", Scalar(uint32(3)), "key deepseek2.expert_gating_func: 3 is not supported (1 softmax, 2 sigmoid)"},
		{"deepseek2.attention.key_length_mla", Scalar(uint32(12)), "attn_k_b/attn_v_b are not supported"},
		{"deepseek2.expert_group_used_count", Scalar(uint32(9)), "key deepseek2.expert_group_used_count: must be 1..4"},
		{"deepseek2.rope.dimension_count", Scalar(uint32(12)), "key deepseek2.rope.dimension_count: 12 must be even and below key_length 12"},
	} {
		var kv []KV
		replaced := false
		for _, x := range f.KVs() {
			if x.Key == tt.key {
				x.Value, replaced = tt.v, true
			}
			kv = append(kv, x)
		}
		if !replaced {
			kv = append(kv, KV{Key: tt.key, Value: tt.v})
		}
		var ts []WTensor
		for _, info := range f.Tensors() {
			raw, err := f.ReadRaw(info.Name)
			if err != nil {
				t.Fatal(err)
			}
			ts = append(ts, WTensor{Name: info.Name, Type: info.Type, Dims: info.Dims, Data: raw.Data})
		}
		_, err := Config(parse(t, encode(t, kv, ts)))
		wantError(t, err, tt.want)
	}
}
