package refcheck

import (
	"context"
	"math"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
)

// Bound is the largest difference allowed between the engine's float32
// logits and the float64 reference, relative to the largest reference
// logit (or absolute below 1): float32 rounding over a few small layers
// stays far below it, a wrong operation far above.
const Bound = 1e-4

// Decode runs m on the exact CPU path, feeding ids one at a time, and
// reports (t.Errorf, prefixed with label when it is not empty) every
// position whose logits differ from testmodel.Logits(ref, ids) by more
// than Bound. ref is usually m itself; a reader's test may pass the model
// the file was written from.
func Decode(t testing.TB, label string, m, ref *model.Model, ids []int) {
	t.Helper()
	want := testmodel.Logits(ref, ids)
	e, err := engine.New(cpu.New(cpu.Options{Exact: true}), m, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if label != "" {
		label += ": "
	}
	for p, id := range ids {
		got, err := e.Forward(context.Background(), []int{id})
		if err != nil {
			t.Fatalf("%sposition %d: %v", label, p, err)
		}
		var maxDiff, maxAbs float64
		for i, w := range want[p] {
			maxDiff = math.Max(maxDiff, math.Abs(float64(got[i])-w))
			maxAbs = math.Max(maxAbs, math.Abs(w))
		}
		if maxDiff > Bound*math.Max(1, maxAbs) {
			t.Errorf("%sposition %d: logits differ from the reference by %.3g (largest %.3g)", label, p, maxDiff, maxAbs)
		}
	}
}
