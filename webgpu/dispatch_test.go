package webgpu_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/webgpu"
)

// TestDispatchesPerToken counts a decode step's dispatches by kernel
// file: embed, each layer in one layer.wgsl dispatch (FuseLayer: the
// model's vectors fit one workgroup), and the head with the final norm
// and argmax (matvec's head_argmax). For stories260K (dense) and the
// synthetic OLMoE family (QK-norm over the whole projection, eight
// experts of which four are routed, softmax without renormalisation),
// which took 28 dispatches per token with the kernels before fusion and
// 24 with every fusion but FuseLayer's. TestLayerFusion counts the path
// without FuseLayer.
func TestDispatchesPerToken(t *testing.T) {
	stories, err := llama2c.Load(filepath.Join(shared.Models(t), "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		m    *model.Model
	}{{"stories260K", stories}, {"olmoe-synthetic", testmodel.Random(testmodel.Family("olmoe", false), 1)}} {
		t.Run(c.name, func(t *testing.T) { dispatchesPerToken(t, c.m) })
	}
}

func dispatchesPerToken(t *testing.T, m *model.Model) {
	gpu := newBackend(t, webgpu.Options{})
	e, err := engine.New(gpu, m, engine.Options{MaxSeq: 64})
	if err != nil {
		t.Fatal(err)
	}
	// The prompt, then a first decode step, which also packs each layer's
	// weights for layer.wgsl (copy.wgsl, once).
	for _, ids := range [][]int{{1, 2, 3, 4}, {5}} {
		if _, err := e.ForwardArgmax(context.Background(), ids); err != nil {
			t.Fatal(err)
		}
	}
	files := []string{"embed.wgsl", "rmsnorm.wgsl", "matvec_multi.wgsl", "attn_rope.wgsl", "rope.wgsl", "kvstore.wgsl", "attention.wgsl", "matvec.wgsl",
		"argmax.wgsl", "router.wgsl", "route.wgsl", "moe.wgsl", "moe_down.wgsl", "moe_combine.wgsl", "layer.wgsl", "copy.wgsl"}
	count := func() map[string]int {
		c := map[string]int{}
		for _, f := range files {
			c[f] = webgpu.Dispatches(gpu, f)
		}
		return c
	}
	before, d0 := count(), gpu.Stats().Dispatches
	if _, err := e.ForwardArgmax(context.Background(), []int{6}); err != nil {
		t.Fatal(err)
	}
	after := count()
	L := m.Config.Layers
	// Each layer is one layer.wgsl dispatch (FuseLayer); the head and
	// argmax one matvec.wgsl dispatch.
	want := map[string]int{"embed.wgsl": 1, "layer.wgsl": L, "matvec.wgsl": 1}
	var got []string
	for _, f := range files {
		got = append(got, fmt.Sprintf("%s=%d", f, after[f]-before[f]))
		if after[f]-before[f] != want[f] {
			t.Errorf("%s: %d dispatches, want %d", f, after[f]-before[f], want[f])
		}
	}
	total := 0
	for _, n := range want {
		total += n
	}
	if n := gpu.Stats().Dispatches - d0; n != total {
		t.Errorf("%d dispatches per token, want %d", n, total)
	}
	t.Logf("%d layers: %d dispatches per token: %v", L, gpu.Stats().Dispatches-d0, slices.Clip(got))
}

// TestRouterRouteDispatch: in a decode step of the synthetic OLMoE and
// Mixtral families, whose routers fit one matvec workgroup, each sparse
// layer's router product and route are one router.wgsl dispatch (no
// route.wgsl), and the greedy tokens equal the CPU backend's
// (shaders.TestRouterRoute holds the kernel to matvec + route). FuseLayer
// is off: it would take these small layers whole, and router.wgsl is
// what layers too large for it take.
func TestRouterRouteDispatch(t *testing.T) {
	for _, name := range []string{"olmoe", "mixtral"} {
		t.Run(name, func(t *testing.T) {
			m := testmodel.Random(testmodel.Family(name, false), 3)
			sparse := 0
			for _, f := range m.Config.FFN {
				if f.Sparse() {
					sparse++
				}
			}
			if sparse == 0 {
				t.Fatalf("%s has no sparse layer", name)
			}
			gpu := newBackend(t, webgpu.Options{})
			webgpu.SetNoLayer(gpu, true)
			ge, err := engine.New(gpu, m, engine.Options{MaxSeq: 64})
			if err != nil {
				t.Fatal(err)
			}
			ce, err := engine.New(cpu.New(cpu.Options{Exact: true}), m, engine.Options{MaxSeq: 64})
			if err != nil {
				t.Fatal(err)
			}
			ids := []int{1, 2, 3}
			for step := range 6 {
				r0, q0 := webgpu.Dispatches(gpu, "router.wgsl"), webgpu.Dispatches(gpu, "route.wgsl")
				g, err := ge.ForwardArgmax(context.Background(), ids)
				if err != nil {
					t.Fatal(err)
				}
				c, err := ce.ForwardArgmax(context.Background(), ids)
				if err != nil {
					t.Fatal(err)
				}
				if g != c {
					t.Fatalf("step %d: gpu token %d, cpu %d", step, g, c)
				}
				if len(ids) == 1 {
					if n := webgpu.Dispatches(gpu, "router.wgsl") - r0; n != sparse {
						t.Errorf("step %d: %d router_route dispatches, want %d (one per sparse layer)", step, n, sparse)
					}
					if n := webgpu.Dispatches(gpu, "route.wgsl") - q0; n != 0 {
						t.Errorf("step %d: %d route dispatches, want 0", step, n)
					}
				}
				ids = []int{g}
			}
		})
	}
}
