package hf_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/refcheck"
	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestGptOssCheckpoint writes synthetic gpt-oss checkpoints in both expert
// layouts (MXFP4 blocks and scales as released, and dequantised bf16
// gate_up_proj/down_proj stored input-major), reads them, and checks the
// config, that MXFP4 experts stay MXFP4, that both layouts decode to the
// same experts, and that the engine matches the naive reference at every
// position past the sliding window.
func TestGptOssCheckpoint(t *testing.T) {
	models := map[bool]*model.Model{}
	for _, mx := range []bool{true, false} {
		dir := t.TempDir()
		o := synth.Default("gpt_oss")
		o.MXFP4 = mx
		if !mx {
			o.DType = tensor.BF16
		}
		if err := synth.Write(dir, o); err != nil {
			t.Fatal(err)
		}
		m, err := hf.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		models[mx] = m
		c := m.Config
		if !c.Sinks || !c.AttnBias || !c.AttnOutBias || c.SlidingWindow != 8 || c.Window(0) != 8 || c.Window(1) != 0 {
			t.Fatalf("attention config %+v", c)
		}
		if r := c.RopeScale; r == nil || r.Type != "yarn" || !r.NoTruncate || r.Factor != 4 {
			t.Fatalf("rope_scaling %+v, want yarn factor 4 truncate false", r)
		}
		f := c.FFN[0]
		if f.Act != model.ActSwiGLUClamped || f.Alpha != 1.702 || f.Limit != 7 || !f.ExpertBias || !f.Router.LogitBias || f.Router.TopK != 2 {
			t.Fatalf("ffn %+v router %+v", f, *f.Router)
		}
		wantDT := tensor.BF16
		if mx {
			wantDT = tensor.MXFP4
		}
		if d := m.Weights[model.ExpertName(1, 3, "down")].DType; d != wantDT {
			t.Fatalf("expert dtype %v, want %v", d, wantDT)
		}
		ids := make([]int, 20)
		for i := range ids {
			ids[i] = (i*31 + 7) % c.Vocab
		}
		refcheck.Decode(t, fmt.Sprintf("mxfp4=%v", mx), m, m, ids)
	}
	// The same seed draws the same values for both layouts: the bf16
	// experts are the raw values, the MXFP4 ones their quantisation, so
	// the two must agree to within MXFP4's rounding (a quarter of each
	// value at most, the step of e2m1 being ≤ half its magnitude, plus
	// bf16's), and bit-for-bit the biases.
	for _, name := range []string{model.ExpertName(0, 2, "gate"), model.ExpertName(0, 2, "up"), model.ExpertName(1, 0, "down")} {
		a, _ := models[true].Weights[name].Float32s()
		b, _ := models[false].Weights[name].Float32s()
		var num, den float64
		for i := range a {
			num += float64(a[i]-b[i]) * float64(a[i]-b[i])
			den += float64(b[i]) * float64(b[i])
		}
		if r := math.Sqrt(num / den); r > 0.15 {
			t.Errorf("%s: MXFP4 and bf16 layouts differ by %.3g relative RMS", name, r)
		}
	}
	for _, name := range []string{model.LayerName(0, "expert_gate_bias"), model.LayerName(1, "expert_up_bias")} {
		a, _ := models[true].Weights[name].Float32s()
		b, _ := models[false].Weights[name].Float32s()
		for i := range a {
			if math.Abs(float64(a[i]-b[i])) > 1e-2*math.Abs(float64(a[i]))+1e-6 { // bf16 vs f32 rounding
				t.Fatalf("%s[%d]: %v vs %v", name, i, a[i], b[i])
			}
		}
	}
}

// TestGptOssRefusals: config values the engine does not implement are
// refused with the key and value named.
func TestGptOssRefusals(t *testing.T) {
	dir := t.TempDir()
	if err := synth.Write(dir, synth.Default("gpt_oss")); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{`"quant_method": "mxfp4"`, `"quant_method": "gptq"`, `quantization_config.quant_method "gptq" is not supported`},
		{`"full_attention"`, `"chunked_attention"`, `layer_types[1] "chunked_attention" is not supported`},
		{`"rope_type": "yarn"`, `"rope_type": "longrope"`, `type "longrope" is not supported`},
		{`"swiglu_limit": 7`, `"swiglu_limit": -1`, `swiglu_limit -1`},
		{`"experts_per_token": 2`, `"experts_per_token": 3`, `experts_per_token 3 disagrees`},
	} {
		s := string(raw)
		if !strings.Contains(s, tc.from) {
			t.Fatalf("config.json has no %s:\n%s", tc.from, s)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(strings.Replace(s, tc.from, tc.to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := hf.Load(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.to, err, tc.want)
		}
	}
}
