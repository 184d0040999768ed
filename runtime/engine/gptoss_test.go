package engine_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestSlidingWindowRing runs gpt-oss's real window (128) past its end: the
// sliding layers keep a ring of window-1+MaxBatch positions, and the
// logits at every position, decoding and prefilling in batches that wrap
// the ring, must equal the naive reference's full attention masked to the
// window.
func TestSlidingWindowRing(t *testing.T) {
	cfg := testmodel.Family("gpt_oss", false)
	cfg.SlidingWindow, cfg.MaxSeq = 128, 512
	m := testmodel.Random(cfg, 11)
	ids := make([]int, 300)
	for i := range ids {
		ids[i] = (i*37 + 5) % cfg.Vocab
	}
	want := testmodel.Logits(m, ids)
	for _, exact := range []bool{true, false} {
		t.Run(fmt.Sprintf("exact=%v", exact), func(t *testing.T) {
			e, err := engine.New(cpu.New(cpu.Options{Exact: exact}), m, engine.Options{MaxBatch: 1})
			if err != nil {
				t.Fatal(err)
			}
			for p, id := range ids {
				got, err := e.Forward(context.Background(), []int{id})
				if err != nil {
					t.Fatal(err)
				}
				checkClose(t, fmt.Sprintf("decode pos %d", p), got, want[p])
			}
			// Batches of 40: ring of 167 positions, wrapped mid-batch.
			e2, err := engine.New(cpu.New(cpu.Options{Exact: exact}), m, engine.Options{MaxBatch: 40})
			if err != nil {
				t.Fatal(err)
			}
			for start := 0; start < len(ids); start += 70 {
				end := min(start+70, len(ids))
				got, err := e2.Forward(context.Background(), ids[start:end])
				if err != nil {
					t.Fatal(err)
				}
				checkClose(t, fmt.Sprintf("prefill to pos %d", end-1), got, want[end-1])
			}
			// The ring has overwritten what position 100 would need.
			if e2.CanTruncate(100) || e2.Truncate(100) == nil {
				t.Error("truncating past the ring was allowed")
			}
			if !e2.CanTruncate(260) {
				t.Error("truncating within the ring was refused")
			}
			if err := e2.Truncate(260); err != nil {
				t.Fatal(err)
			}
			got, err := e2.Forward(context.Background(), ids[260:261])
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "after truncate", got, want[260])
		})
	}
}

// TestGptOssRefusedWithoutFeatures: a backend that does not implement
// sinks is refused with a sentence naming what is missing.
func TestGptOssRefusedWithoutFeatures(t *testing.T) {
	m := testmodel.Random(testmodel.Family("gpt_oss", false), 1)
	_, err := engine.New(noFeatures{cpu.New(cpu.Options{})}, m, engine.Options{})
	if err == nil || !strings.Contains(err.Error(), "attention sinks") {
		t.Fatalf("err = %v, want a refusal naming attention sinks", err)
	}
}

// noFeatures hides the CPU backend's optional features.
type noFeatures struct{ *cpu.Backend }

func (noFeatures) Supports(backend.Feature) bool { return false }

// TestGptOssMXFP4Experts stores every routed expert as MXFP4 (as gpt-oss
// ships them) and compares with the naive reference over the same
// (dequantised) weights at every decode position within 1e-4, the exact
// path and the fast one (16-bit activations times FP4 codes in integers,
// whose rounding is 2^-16 of each block's largest activation: 1.8e-5
// measured).
func TestGptOssMXFP4Experts(t *testing.T) {
	for _, name := range testmodel.GptOssFamilies {
		m := testmodel.Random(testmodel.Family(name, false), 5)
		for n, w := range m.Weights {
			if strings.Contains(n, ".experts.") {
				q, err := tensor.Quantize(w, tensor.MXFP4)
				if err != nil {
					t.Fatal(err)
				}
				m.Weights[n] = q
			}
		}
		ids := []int{0, 5, 17, 42, 3, 96, 11, 64, 8, 30, 2, 71}
		want := testmodel.Logits(m, ids)
		for _, exact := range []bool{true, false} {
			e, err := engine.New(cpu.New(cpu.Options{Exact: exact}), m, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			const bound = 1e-4
			var worst float64
			for p, id := range ids {
				got, err := e.Forward(context.Background(), []int{id})
				if err != nil {
					t.Fatal(err)
				}
				var maxDiff, maxAbs float64
				for i, w := range want[p] {
					maxDiff = math.Max(maxDiff, math.Abs(float64(got[i])-w))
					maxAbs = math.Max(maxAbs, math.Abs(w))
				}
				rel := maxDiff / math.Max(1, maxAbs)
				worst = math.Max(worst, rel)
				if rel > bound {
					t.Errorf("%s exact=%v pos %d: logits differ by %.3g relative, bound %g", name, exact, p, rel, bound)
				}
			}
			t.Logf("%s exact=%v: worst relative logit difference %.3g", name, exact, worst)
		}
	}
}
