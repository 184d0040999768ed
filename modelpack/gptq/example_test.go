package gptq_test

import (
	"context"
	"fmt"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/gptq"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Calibrate a model on a few token sequences, then store one of its
// matrices as q4_0 with GPTQ. pack.Options.Quantizer = stats.Quantizer(0)
// does this for every matrix of a pack.
func Example() {
	m := testmodel.Random(testmodel.Family("mixtral", false), 1)
	stats, err := gptq.Collect(context.Background(), m, [][]int{{1, 2, 3, 4, 5, 6, 7, 8}}, 1)
	if err != nil {
		panic(err)
	}
	name := model.LayerName(0, "wq")
	q, err := gptq.Quantize(m.Weights[name], tensor.Q4_0, stats.Get(name), gptq.DefaultDamp)
	if err != nil {
		panic(err)
	}
	fmt.Println(q.Name, q.DType, q.Shape, "calibration rows:", stats.Get(name).Rows)
	// Output: layers.0.wq q4_0 [32 32] calibration rows: 8
}
