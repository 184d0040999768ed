package webgpu_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/webgpu"
)

// TestLayerFusion decodes with FuseLayer (each layer one layer.wgsl
// dispatch) and without (the ops' dispatches) on two backends, from a
// four-token prompt, feeding both the fused run's greedy tokens:
// stories260K for 80 positions (past a 64-position split); the synthetic
// families whose layers layer.wgsl takes — with QK-norm over the whole
// projection (olmoe) and per head (qwen3_moe), routed experts with
// softmax top-k unnormalised (olmoe) and renormalised (mixtral, qwen3_moe),
// and routing to every expert — for 60 positions (their whole context of 64). layer.wgsl does the
// same arithmetic in the same order as those dispatches, so the logits
// must be equal bit for bit at every step, and a decode step after the
// first must be embed, one dispatch per layer and the head.
func TestLayerFusion(t *testing.T) {
	stories, err := llama2c.Load(filepath.Join(shared.Models(t), "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		m     *model.Model
		steps int
		wide  bool // the MoE kernels at MoELanes lanes, as on a GPU
	}{
		{"stories260K", stories, 80, false},
		{"olmoe", testmodel.Random(testmodel.Family("olmoe", false), 1), 58, false},
		{"olmoe/all-experts", testmodel.Random(testmodel.Family("olmoe", true), 2), 58, false},
		{"qwen3_moe", testmodel.Random(testmodel.Family("qwen3_moe", false), 3), 58, false},
		{"mixtral", testmodel.Random(testmodel.Family("mixtral", false), 4), 58, false},
		{"olmoe/wide", testmodel.Random(testmodel.Family("olmoe", false), 1), 58, true},
	} {
		t.Run(c.name, func(t *testing.T) { layerFusion(t, c.m, c.steps, c.wide) })
	}
}

func layerFusion(t *testing.T, m *model.Model, steps int, wide bool) {
	L := m.Config.Layers
	on, off := newBackend(t, webgpu.Options{}), newBackend(t, webgpu.Options{})
	webgpu.SetNoLayer(off, true)
	webgpu.SetMoEWide(on, wide)
	webgpu.SetMoEWide(off, wide)
	eOn, err := engine.New(on, m, engine.Options{MaxSeq: 128})
	if err != nil {
		t.Fatal(err)
	}
	eOff, err := engine.New(off, m, engine.Options{MaxSeq: 128})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids := []int{1, 2, 3, 4}
	for step := range steps {
		d0, f0 := on.Stats().Dispatches, off.Stats().Dispatches
		a, err := eOn.Forward(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		b, err := eOff.Forward(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("step %d (position %d): logit %d is %v fused, %v unfused", step, eOn.Pos()-1, i, a[i], b[i])
			}
		}
		if step > 1 {
			// A decode step after the first (which packs the layers'
			// weights): embed, the layers, the head (no argmax: Forward
			// reads the logits).
			if n := on.Stats().Dispatches - d0; n != L+2 {
				t.Fatalf("step %d: %d dispatches fused, want %d", step, n, L+2)
			}
			if n := off.Stats().Dispatches - f0; n <= L+2 {
				t.Fatalf("step %d: %d dispatches unfused, want more than %d", step, n, L+2)
			}
		}
		ids = []int{argmax(a)}
	}
	if n := webgpu.LayerPacks(on); n != L {
		t.Errorf("%d layers packed, want %d", n, L)
	}
	if n := webgpu.LayerPacks(off); n != 0 {
		t.Errorf("%d layers packed with FuseLayer off", n)
	}
	if webgpu.Dispatches(on, "layer.wgsl") == 0 || webgpu.Dispatches(off, "layer.wgsl") != 0 {
		t.Errorf("layer.wgsl dispatches: %d fused, %d unfused", webgpu.Dispatches(on, "layer.wgsl"), webgpu.Dispatches(off, "layer.wgsl"))
	}
}
