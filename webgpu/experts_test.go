package webgpu_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/webgpu"
)

// pad4 is the device size of a tensor: its bytes rounded up to words.
func pad4(n int) int64 { return int64((n + 3) &^ 3) }

// deviceBytes sums the device sizes of m's routed expert matrices and of
// all its other tensors (f32 here, so nothing is converted on upload).
func deviceBytes(m *model.Model) (experts, other int64) {
	for name, w := range m.Weights {
		if strings.Contains(name, ".experts.") {
			experts += pad4(len(w.Data))
		} else {
			other += pad4(len(w.Data))
		}
	}
	return experts, other
}

// TestExpertsOnce loads every expert of a sparse model and checks that
// the device holds one copy of each: the expert pool's live extents are
// exactly the experts' bytes, and the weights with buffers of their own
// are exactly the other tensors (an expert with its own buffers besides
// its pooled copy would count there). The pool's pages may hold free
// room, never a second copy.
func TestExpertsOnce(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	m := testmodel.Random(family("mode"), 9)
	experts, other := deviceBytes(m)
	diff, _ := compareEngine(t, m, gpu, engine.Options{MaxBatch: 8}, []int{0, 5, 17, 42, 3}, 8)
	st := gpu.Stats()
	t.Logf("experts %d B (pool %d B in %d pages), other weights %d B; max |logit diff| %.3g",
		st.ExpertBytes, st.ExpertPoolBytes, st.ExpertPages, st.WeightBytes, diff)
	if st.ExpertBytes != experts {
		t.Errorf("pooled expert bytes %d, the experts' tensors hold %d", st.ExpertBytes, experts)
	}
	if st.WeightBytes != other {
		t.Errorf("weights in own buffers %d B, the non-expert tensors hold %d B", st.WeightBytes, other)
	}
	if st.ExpertPoolBytes < st.ExpertBytes {
		t.Errorf("pool pages of %d B hold %d B of experts", st.ExpertPoolBytes, st.ExpertBytes)
	}
	if diff > 1e-4 {
		t.Errorf("max logit difference %.3g > 1e-4", diff)
	}
}

// olmoeSized is a sparse model with OLMoE's expert layout (64 experts,
// top 8, softmax without renormalisation) at toy widths, with the expert
// matrices in formats f (gate, up) and fd (down).
func olmoeSized(t *testing.T, f, fd tensor.DType) *model.Model {
	c := testmodel.Config(64, 2, 4, 2, 97)
	for range c.Layers {
		widths := make([]int, 64)
		for i := range widths {
			widths[i] = 32
		}
		c.FFN = append(c.FFN, model.FFN{ExpertWidths: widths, Router: &model.Router{Scoring: model.Softmax, TopK: 8}})
	}
	m := testmodel.Random(c, 21)
	for name, w := range m.Weights {
		to := tensor.DType(tensor.Invalid)
		switch {
		case strings.HasSuffix(name, ".down") && strings.Contains(name, ".experts."):
			to = fd
		case strings.Contains(name, ".experts."):
			to = f
		}
		if to != tensor.Invalid && to != tensor.F32 {
			q, err := tensor.Quantize(w, to)
			if err != nil {
				t.Fatal(err)
			}
			m.Weights[name] = q
		}
	}
	return m
}

// TestExpertsOverBindingLimit: each layer's 64 experts take several
// times a deliberately lowered binding limit. The pool spreads them over
// pages of at most one binding each, the MoE kernels run once per page
// and format, and the model still equals the CPU backend (gate and up in
// one format, down in another in the second case).
func TestExpertsOverBindingLimit(t *testing.T) {
	const limit = 64 << 10
	for _, c := range []struct{ gate, down tensor.DType }{{tensor.F32, tensor.F32}, {tensor.Q8_0, tensor.F16}} {
		t.Run(fmt.Sprintf("%v-%v", c.gate, c.down), func(t *testing.T) {
			gpu := newBackend(t, webgpu.Options{MaxBinding: limit})
			m := olmoeSized(t, c.gate, c.down)
			experts, _ := deviceBytes(m)
			layer := experts / int64(m.Config.Layers)
			if layer < 3*limit {
				t.Fatalf("a layer's experts take %d B, not several times the %d-B limit", layer, limit)
			}
			diff, _ := compareEngine(t, m, gpu, engine.Options{MaxBatch: 8, MaxSeq: 32}, []int{0, 5, 17, 42, 3, 9}, 6)
			st := gpu.Stats()
			t.Logf("layer's experts %d B over a %d-B binding limit: %d pages (%d B, %d B live); max |logit diff| %.3g",
				layer, limit, st.ExpertPages, st.ExpertPoolBytes, st.ExpertBytes, diff)
			if st.ExpertPoolBytes > int64(st.ExpertPages)*limit {
				t.Errorf("%d pages of %d B in all: some page exceeds the %d-B limit", st.ExpertPages, st.ExpertPoolBytes, limit)
			}
			if diff > 1e-3 {
				t.Errorf("max logit difference %.3g > 1e-3", diff)
			}
		})
	}
}

// TestExpertBudgetOnDevice: with a budget of a few experts per layer the
// engine keeps evicting and loading experts while it decodes; each load
// goes into a freed extent and the table is rewritten in place. Tokens
// must equal the CPU backend's, and once the pool has grown to hold what
// the budget allows, loading and evicting must not grow it.
func TestExpertBudgetOnDevice(t *testing.T) {
	// Small pages, so that a pool that did not reuse freed extents would
	// add pages: the whole model's experts would fill about 50.
	gpu := newBackend(t, webgpu.Options{MaxBinding: 16 << 10})
	m := olmoeSized(t, tensor.Q8_0, tensor.Q8_0)
	experts, _ := deviceBytes(m)
	per := experts / int64(m.Config.Layers*64)
	o := engine.Options{MaxBatch: 8, MaxSeq: 64, ExpertBudget: 20 * per}
	diff, eg := compareEngine(t, m, gpu, o, []int{0, 5, 17}, 12)
	es, before := eg.Stats(), gpu.Stats()
	if es.ExpertEvictions == 0 {
		t.Fatalf("no evictions under a budget of %d experts: the test does not exercise reuse", 20)
	}
	for i := range 12 {
		if _, err := eg.Forward(context.Background(), []int{20 + i}); err != nil {
			t.Fatal(err)
		}
	}
	after, es2 := gpu.Stats(), eg.Stats()
	t.Logf("%d loads, %d evictions; pool %d B in %d pages, %d B live; max |logit diff| %.3g",
		es2.ExpertsLoaded, es2.ExpertEvictions, after.ExpertPoolBytes, after.ExpertPages, after.ExpertBytes, diff)
	if es2.ExpertEvictions <= es.ExpertEvictions {
		t.Errorf("no evictions in 12 more steps")
	}
	if after.ExpertPoolBytes != before.ExpertPoolBytes {
		t.Errorf("the pool grew from %d to %d B while the budget held resident experts constant", before.ExpertPoolBytes, after.ExpertPoolBytes)
	}
	if after.ExpertBytes != es2.ExpertBytesResident {
		t.Errorf("pool holds %d B of experts, the engine counts %d B resident", after.ExpertBytes, es2.ExpertBytesResident)
	}
	if diff > 1e-3 {
		t.Errorf("max logit difference %.3g > 1e-3", diff)
	}
}

// plainBackend hides every optional interface of the backend it wraps,
// backend.ExpertUploader included.
type plainBackend struct{ backend.Backend }

// TestExpertsUnpooled: expert matrices uploaded as ordinary weights —
// their names canonical, but not through backend.ExpertUploader — stay in
// buffers of their own (the backend goes by the call, not by the name),
// and the MoE kernels read them there in place (one dispatch per buffer):
// still one copy, still equal to the CPU backend.
func TestExpertsUnpooled(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	m := testmodel.Random(family("mixtral"), 4)
	experts, other := deviceBytes(m)
	diff := compare(t, m, plainBackend{gpu}, engine.Options{MaxBatch: 8}, []int{0, 5, 17}, 6)
	st := gpu.Stats()
	t.Logf("pool %d B, own buffers %d B; max |logit diff| %.3g", st.ExpertBytes, st.WeightBytes, diff)
	if st.ExpertBytes != 0 || st.WeightBytes != experts+other {
		t.Errorf("pool holds %d B and own buffers %d B; want 0 and %d", st.ExpertBytes, st.WeightBytes, experts+other)
	}
	if diff > 1e-4 {
		t.Errorf("max logit difference %.3g > 1e-4", diff)
	}
}

// TestExpertsGathered: OLMoE-layout layers whose 64 f32 experts are uploaded
// one after another land in pool pages shared by both layers, the first
// ones small, so a layer's experts straddle pages. The backend gathers
// each layer's experts into one page, after which a decode step runs two
// MoE dispatches per sparse layer (moe_gu with swiglu, moe_down_sum with
// the combine and the residual add) and no moe_combine or swiglu, and the
// tokens still equal the CPU backend's. FuseLayer is off: it would take
// these layers whole (TestLayerFusion).
func TestExpertsGathered(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	webgpu.SetNoLayer(gpu, true)
	m := olmoeSized(t, tensor.F32, tensor.F32) // 1.5 MB of experts per layer; the first pages are 1 MiB
	diff, e := compareEngine(t, m, gpu, engine.Options{}, []int{3, 1, 4}, 6)
	if diff > 1e-4 {
		t.Errorf("max logit difference %.3g > 1e-4", diff)
	}
	moeDispatches := func() int { return webgpu.Dispatches(gpu, "moe.wgsl") + webgpu.Dispatches(gpu, "moe_down.wgsl") }
	moe, comb, ffn := moeDispatches(), webgpu.Dispatches(gpu, "moe_combine.wgsl"), webgpu.Dispatches(gpu, "ffn.wgsl")
	if _, err := e.ForwardArgmax(context.Background(), []int{7}); err != nil {
		t.Fatal(err)
	}
	layers := len(m.Config.FFN)
	moe, comb, ffn = moeDispatches()-moe, webgpu.Dispatches(gpu, "moe_combine.wgsl")-comb, webgpu.Dispatches(gpu, "ffn.wgsl")-ffn
	t.Logf("one decode step: %d moe, %d moe_combine, %d ffn dispatches for %d sparse layers; %d expert pages",
		moe, comb, ffn, layers, gpu.Stats().ExpertPages)
	if moe != 2*layers || comb != 0 || ffn != 0 {
		t.Errorf("one decode step ran %d moe, %d moe_combine and %d ffn dispatches for %d sparse layers, want %d, 0, 0",
			moe, comb, ffn, layers, 2*layers)
	}
	if gpu.Stats().ExpertPages < 2 {
		t.Errorf("%d expert pages: the test needs a layer's experts to start out in several", gpu.Stats().ExpertPages)
	}
}
