package pack

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestPaddedFFNsComputeTheSame: widening FFNs with zero neurons leaves the
// model's function unchanged. The widened model, read whole through
// paddedSource in f32, generates the source's tokens with logits equal to
// float rounding, and only the widths whose FFN gets smaller are widened.
func TestPaddedFFNsComputeTheSame(t *testing.T) {
	type subject struct {
		name string
		m    *model.Model
		want [][]int // widths after padding, per layer: shared then routed
	}
	var subjects []subject
	for _, arch := range []string{"olmoe", "qwen3_moe", "mode"} {
		dir := filepath.Join(t.TempDir(), arch)
		o := synth.Default(arch)
		o.Seed = 5
		if err := synth.Write(dir, o); err != nil {
			t.Fatal(err)
		}
		m, err := hf.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, subject{name: arch, m: m})
	}
	// olmoe's 48-wide experts become 64, as do qwen3_moe's. mode's
	// {32, 96, 64, 16} stay: three 32-wide q4_0 matrices would outweigh two
	// 16-wide ones and an f16 down.
	subjects[0].want = [][]int{{64, 64, 64, 64, 64, 64, 64, 64}, {64, 64, 64, 64, 64, 64, 64, 64}}
	if m := subjects[2].m; padFFNs(ModelSource{M: m}, m.Config, tensor.Q4_0, tensor.Q4_0) != nil {
		t.Error("mode: widened an FFN although that makes it larger")
	}
	subjects = slices.Delete(subjects, 2, 3)
	if dir := shared.Models(t); dir != "" {
		m, err := llama2c.Load(filepath.Join(dir, "stories260K", "stories260K.bin"))
		if err != nil {
			t.Fatal(err)
		}
		s := subject{name: "stories260K", m: m} // a 172-wide dense FFN becomes 192
		for range m.Config.Layers {
			s.want = append(s.want, []int{192})
		}
		subjects = append(subjects, s)
	}
	for _, sub := range subjects {
		t.Run(sub.name, func(t *testing.T) {
			p := padFFNs(ModelSource{M: sub.m}, sub.m.Config, tensor.Q4_0, tensor.Q4_0)
			if p == nil {
				t.Fatal("nothing was widened")
			}
			for l, f := range p.cfg.FFN {
				got := append(slices.Clone(f.SharedWidths), f.ExpertWidths...)
				if sub.want != nil && !slices.Equal(got, sub.want[l]) {
					t.Errorf("layer %d widths %v, want %v", l, got, sub.want[l])
				}
			}
			wide := &model.Model{Config: p.cfg, Weights: model.Weights{}}
			for _, sp := range p.cfg.Spec() {
				x, err := p.Read(sp.Name, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(x.Shape, sp.Shape) && !(len(sp.Shape) == 1 && x.Elems() == sp.Shape[0]) {
					t.Fatalf("%s: shape %v, the widened config needs %v", sp.Name, x.Shape, sp.Shape)
				}
				wide.Weights[sp.Name] = x
			}
			if err := wide.Validate(false); err != nil {
				t.Fatal(err)
			}
			prompt := []int{1, 50, 7, 99}
			want, wantLogits := run(t, sub.m, prompt)
			got, gotLogits := run(t, wide, prompt)
			if !slices.Equal(got, want) {
				t.Fatalf("widened model generated %v, source %v", got, want)
			}
			for i := range wantLogits {
				if d := math.Abs(float64(gotLogits[i] - wantLogits[i])); d > 1e-5*(1+math.Abs(float64(wantLogits[i]))) {
					t.Fatalf("logit %d: %g, source %g", i, gotLogits[i], wantLogits[i])
				}
			}
		})
	}
}

// TestPaddedRowSlices: row slices of a widened gate or up matrix hold the
// source's rows, then zero rows; a widened down matrix's rows carry zero
// columns past the source's width.
func TestPaddedRowSlices(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "olmoe")
	if err := synth.Write(dir, synth.Default("olmoe")); err != nil {
		t.Fatal(err)
	}
	m, err := hf.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := padFFNs(ModelSource{M: m}, m.Config, tensor.Q4_0, tensor.Q4_0)
	up := model.ExpertName(1, 3, "up")
	src, _ := m.Weights[up].Float32s()
	dim := m.Config.Dim
	x, err := p.Read(up, 40, 16) // rows 40..47 from the source, 48..55 zero
	if err != nil {
		t.Fatal(err)
	}
	v, _ := x.Float32s()
	if !slices.Equal(v[:8*dim], src[40*dim:48*dim]) || slices.ContainsFunc(v[8*dim:], func(f float32) bool { return f != 0 }) {
		t.Error("rows 40..55 of a widened up matrix are not the source's 40..47 and 8 zero rows")
	}
	if x, err = p.Read(up, 50, 10); err != nil || slices.ContainsFunc(mustF32(t, x), func(f float32) bool { return f != 0 }) {
		t.Errorf("rows 50..59: %v, want zeros", err)
	}
	if _, err := p.Read(up, 60, 10); err == nil {
		t.Error("rows past the widened 64 were served")
	}
	down := model.ExpertName(0, 2, "down")
	x, err = p.Read(down, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	v, src = mustF32(t, x), mustF32(t, m.Weights[down])
	if !slices.Equal(x.Shape, []int{2, 64}) || !slices.Equal(v[:48], src[3*48:4*48]) || !slices.Equal(v[64:112], src[4*48:5*48]) ||
		slices.ContainsFunc(v[48:64], func(f float32) bool { return f != 0 }) {
		t.Errorf("rows 3..4 of a widened down matrix: shape %v, not the source's rows with 16 zero columns each", x.Shape)
	}
}

func mustF32(t *testing.T, x *tensor.Tensor) []float32 {
	t.Helper()
	v, err := x.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// run generates 24 greedy tokens after prompt and returns them with the
// logits of the last step.
func run(t *testing.T, m *model.Model, prompt []int) ([]int, []float32) {
	t.Helper()
	e, err := engine.New(cpu.New(cpu.Options{}), m, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	if _, err := e.Generate(context.Background(), prompt, engine.GenerateOptions{MaxTokens: 24, Stop: []int{}},
		func(id int) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	l, err := e.Forward(context.Background(), ids[len(ids)-1:])
	if err != nil {
		t.Fatal(err)
	}
	return ids, slices.Clone(l)
}
