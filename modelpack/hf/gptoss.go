package hf

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"

	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// gpt-oss, as HF transformers' modeling_gpt_oss.py and
// configuration_gpt_oss.py define it: q/k/v/o biases, a sink logit per
// head, layer_types alternating sliding-window and full attention, a
// biased router whose top-k logits are softmaxed, and experts whose gate
// and up projections are fused and interleaved (gate = columns 0, 2, 4…,
// up = 1, 3, 5…) with biases and the clamped SwiGLU (alpha 1.702,
// swiglu_limit).
//
// The experts come in one of two layouts:
//   - MXFP4, as OpenAI released them: mlp.experts.gate_up_proj_blocks
//     [E, 2I, D/32, 16] and gate_up_proj_scales [E, 2I, D/32] (U8), rows
//     being output features, and down_proj_blocks/_scales [E, D, I/32, …];
//     these are kept as MXFP4 (tensor.MXFP4FromBlocks), not widened.
//   - dequantised (bf16, f16 or f32): gate_up_proj [E, D, 2I] and down_proj
//     [E, I, D], stored input-major for x @ W; these are transposed.

const gptOssAlpha = 1.702 // GptOssExperts.alpha, not in config.json

// gptOss sets the attention parts of a gpt_oss config.
func (h *hfConfig) gptOss(c *model.Config) error {
	if len(h.Quantization) > 0 && string(h.Quantization) != "null" {
		var q struct {
			Method string `json:"quant_method"`
		}
		if err := json.Unmarshal(h.Quantization, &q); err != nil {
			return keyError("quantization_config", "is not an object: %v", err)
		}
		if q.Method != "mxfp4" {
			return keyError("quantization_config.quant_method", "%q is not supported (mxfp4, or none)", q.Method)
		}
	}
	c.AttnOutBias = c.AttnBias
	c.Sinks = true
	w := 128 // GptOssConfig's default sliding_window
	if h.SlidingWindow != nil {
		w = *h.SlidingWindow
		if w <= 0 {
			return keyError("sliding_window", "must be positive, got %d", w)
		}
	}
	c.SlidingWindow = w
	if h.LayerTypes != nil {
		if len(h.LayerTypes) != c.Layers {
			return keyError("layer_types", "has %d entries for %d layers", len(h.LayerTypes), c.Layers)
		}
		for i, t := range h.LayerTypes {
			if t != model.LayerSliding && t != model.LayerFull {
				return keyError(fmt.Sprintf("layer_types[%d]", i), "%q is not supported (%q or %q)", t, model.LayerSliding, model.LayerFull)
			}
		}
		c.LayerTypes = slices.Clone(h.LayerTypes)
	} else {
		// GptOssConfig: sliding on even layers, full on odd ones.
		for l := range c.Layers {
			t := model.LayerFull
			if (l+1)%2 == 1 {
				t = model.LayerSliding
			}
			c.LayerTypes = append(c.LayerTypes, t)
		}
	}
	return nil
}

// gptOssFFN describes gpt-oss's every-layer MoE.
func (h *hfConfig) gptOssFFN(layers, experts, topK int) ([]model.FFN, error) {
	if h.ExpertsPerTokenAlt != nil && h.ExpertsPerToken != nil && *h.ExpertsPerTokenAlt != *h.ExpertsPerToken {
		return nil, keyError("experts_per_token", "%d disagrees with num_experts_per_tok %d", *h.ExpertsPerTokenAlt, *h.ExpertsPerToken)
	}
	width, err := required("intermediate_size", h.IntermediateSize)
	if err != nil {
		return nil, err
	}
	limit := 7.0 // GptOssConfig's default swiglu_limit
	if h.SwigluLimit != nil {
		limit = *h.SwigluLimit
	}
	if !(limit > 0) || math.IsInf(limit, 0) || limit > math.MaxFloat32 {
		return nil, keyError("swiglu_limit", "%v must be positive and finite", limit)
	}
	ffn := make([]model.FFN, layers)
	for l := range ffn {
		ffn[l] = model.FFN{
			ExpertWidths: repeat(width, experts),
			// Top-k of the logits, softmax over the k: the same weights as
			// a softmax over all, top-k and renormalisation.
			Router: &model.Router{Scoring: model.Softmax, TopK: topK, NormTopK: true, LogitBias: true},
			Act:    model.ActSwiGLUClamped, Alpha: gptOssAlpha, Limit: float32(limit),
			ExpertBias: true,
		}
	}
	return ffn, nil
}

// FixedFormat reports the routed experts of an MXFP4 checkpoint as
// MXFP4 (pack.Fixed): a pack keeps them so.
func (s *Source) FixedFormat(name string) (tensor.DType, bool) {
	if d, ok := s.derived[name]; ok && d.scales != "" {
		return tensor.MXFP4, true
	}
	return tensor.Invalid, false
}

// derivedRef says where a canonical tensor is inside a fused one.
type derivedRef struct {
	src    string // the fused tensor: gate_up_proj[_blocks], down_proj[_blocks] or gate_up_proj_bias
	scales string // the MXFP4 scales, "" for a dequantised checkpoint
	expert int    // -1 for gate_up_proj_bias
	// parity picks gate (0) or up (1) out of gate_up; -1 for down.
	parity int
}

// resolveGptOss checks every layer's fused expert tensors and records
// where each canonical expert tensor is.
func (p *plan) resolveGptOss(present map[string]bool, info func(string) (safetensors.Info, bool)) error {
	p.derived, p.sources = map[string]derivedRef{}, map[string]bool{}
	c := &p.cfg
	D := c.Dim
	need := func(name, dtype string, shape ...int) error {
		if !present[name] {
			return fmt.Errorf("missing tensor %q (shape %v)", name, shape)
		}
		inf, _ := info(name)
		if !slices.Equal(inf.Shape, shape) {
			return fmt.Errorf("%s: tensor %q: shape %v, want %v", filepath.Base(inf.File), name, inf.Shape, shape)
		}
		switch dtype {
		case "U8":
			if inf.DType != "U8" {
				return fmt.Errorf("%s: tensor %q is %s, want U8", filepath.Base(inf.File), name, inf.DType)
			}
		default:
			if _, err := inf.TensorDType(); err != nil {
				return err
			}
		}
		p.sources[name] = true
		return nil
	}
	for l := range c.Layers {
		f := &c.FFN[l]
		E, I := len(f.ExpertWidths), f.ExpertWidths[0]
		pre := fmt.Sprintf("model.layers.%d.mlp.experts.", l)
		if err := need(pre+"gate_up_proj_bias", "", E, 2*I); err != nil {
			return err
		}
		for i, part := range []string{"expert_gate_bias", "expert_up_bias"} {
			p.derived[model.LayerName(l, part)] = derivedRef{src: pre + "gate_up_proj_bias", expert: -1, parity: i}
		}
		var gu, guS, dn, dnS string
		if present[pre+"gate_up_proj_blocks"] {
			if D%32 != 0 || I%32 != 0 {
				return keyError("hidden_size", "%d and intermediate_size %d must be multiples of 32 for MXFP4 experts", D, I)
			}
			gu, guS, dn, dnS = pre+"gate_up_proj_blocks", pre+"gate_up_proj_scales", pre+"down_proj_blocks", pre+"down_proj_scales"
			for _, t := range []struct {
				name  string
				shape []int
			}{{gu, []int{E, 2 * I, D / 32, 16}}, {guS, []int{E, 2 * I, D / 32}}, {dn, []int{E, D, I / 32, 16}}, {dnS, []int{E, D, I / 32}}} {
				if err := need(t.name, "U8", t.shape...); err != nil {
					return err
				}
			}
		} else {
			gu, dn = pre+"gate_up_proj", pre+"down_proj"
			if err := need(gu, "", E, D, 2*I); err != nil {
				return err
			}
			if err := need(dn, "", E, I, D); err != nil {
				return err
			}
		}
		for e := range E {
			p.derived[model.ExpertName(l, e, "gate")] = derivedRef{src: gu, scales: guS, expert: e, parity: 0}
			p.derived[model.ExpertName(l, e, "up")] = derivedRef{src: gu, scales: guS, expert: e, parity: 1}
			p.derived[model.ExpertName(l, e, "down")] = derivedRef{src: dn, scales: dnS, expert: e, parity: -1}
		}
	}
	return nil
}

// rawRows is one expert's slice of a fused tensor as read.
type rawRows struct {
	src    string
	expert int
	t      *tensor.Tensor // dequantised layouts
	blocks []byte         // MXFP4
	scales []byte
}

// readDerived cuts a canonical tensor out of its fused source.
func (s *Source) readDerived(name string, d derivedRef, row0, rows int) (*tensor.Tensor, error) {
	t, err := s.derive(name, d)
	if err != nil {
		return nil, err
	}
	if rows == 0 {
		return t, nil
	}
	if row0 < 0 || rows < 0 || row0+rows > t.Rows() {
		return nil, fmt.Errorf("hf: %s: rows [%d, %d) outside %v", name, row0, row0+rows, t.Shape)
	}
	if t.DType == tensor.MXFP4 {
		G := t.Cols() / 32
		nb := t.Rows() * G
		sc, qs := t.Data[:nb], t.Data[(nb+3)&^3:]
		return tensor.MXFP4FromBlocks(name, rows, t.Cols(), sc[row0*G:(row0+rows)*G], qs[row0*G*16:(row0+rows)*G*16])
	}
	rb := len(t.Data) / t.Rows()
	return &tensor.Tensor{Name: name, DType: t.DType, Shape: []int{rows, t.Cols()}, Data: t.Data[row0*rb : (row0+rows)*rb]}, nil
}

func (s *Source) derive(name string, d derivedRef) (*tensor.Tensor, error) {
	info, _ := s.st.Info(d.src)
	file := filepath.Base(info.File)
	if d.expert < 0 { // gate_up_proj_bias [E, 2I]: every other column
		src, err := s.st.Read(d.src)
		if err != nil {
			return nil, err
		}
		if i, v, bad := tensor.FirstNonFinite(src); bad {
			return nil, fmt.Errorf("%s: tensor %q: element %d is %v", file, d.src, i, v)
		}
		rows, cols := src.Shape[0], src.Shape[1]
		data := pickColumns(src.Data, src.DType.ElemSize(), rows, cols, d.parity, 2)
		return &tensor.Tensor{Name: name, DType: src.DType, Shape: []int{rows, cols / 2}, Data: data}, nil
	}
	if s.last.src != d.src || s.last.expert != d.expert {
		s.last = rawRows{src: d.src, expert: d.expert}
		var err error
		if d.scales != "" {
			if s.last.blocks, err = s.st.ReadU8Rows(d.src, d.expert, 1); err == nil {
				s.last.scales, err = s.st.ReadU8Rows(d.scales, d.expert, 1)
			}
		} else {
			s.last.t, err = s.st.ReadRows(d.src, d.expert, 1)
			if err == nil {
				if i, v, bad := tensor.FirstNonFinite(s.last.t); bad {
					err = fmt.Errorf("%s: tensor %q: expert %d: element %d is %v", file, d.src, d.expert, i, v)
				}
			}
		}
		if err != nil {
			s.last = rawRows{}
			return nil, err
		}
	}
	r := &s.last
	step, first := 1, 0 // down: every row or column
	if d.parity >= 0 {  // gate or up: every other one
		step, first = 2, d.parity
	}
	if d.scales != "" {
		// [outRows, G, 16] blocks and [outRows, G] scales.
		G := info.Shape[2]
		t, err := pickMXFP4Rows(name, r.scales, r.blocks, len(r.scales)/G, 32*G, first, step)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: expert %d: %w", file, d.src, d.expert, err)
		}
		return t, nil
	}
	// [1, in, out] input-major: transposed.
	in, out := r.t.Shape[1], r.t.Shape[2]
	es := r.t.DType.ElemSize()
	return &tensor.Tensor{Name: name, DType: r.t.DType, Shape: []int{out / step, in}, Data: transposeColumns(r.t.Data, es, in, out, first, step)}, nil
}
