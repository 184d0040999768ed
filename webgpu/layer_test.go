package webgpu_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/webgpu"
)

// TestLayerFusion decodes stories260K with FuseLayer (each layer one
// layer.wgsl dispatch) and without (the ops' dispatches: per layer
// matvec_multi, attn_rope and three matvec) on two backends, 80
// positions from a four-token prompt (past a 64-position split), feeding
// both the fused run's greedy tokens. layer.wgsl does the same
// arithmetic in the same order as those dispatches, so the logits must
// be equal bit for bit at every step.
func TestLayerFusion(t *testing.T) {
	m, err := llama2c.Load(filepath.Join(shared.Models(t), "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	L := m.Config.Layers
	on, off := newBackend(t, webgpu.Options{}), newBackend(t, webgpu.Options{})
	webgpu.SetNoLayer(off, true)
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
	for step := range 80 {
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
