package engine_test

import (
	"context"
	"fmt"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
)

// A mixture-of-experts model whose experts have different widths runs like
// any other: describe it, load weights, generate.
func Example() {
	cfg := testmodel.Config(32, 2, 4, 2, 50)
	for range cfg.Layers {
		cfg.FFN = append(cfg.FFN, model.FFN{
			ExpertWidths: []int{32, 96, 64, 16, 48, 24, 80, 40}, // heterogeneous experts
			Router:       &model.Router{Scoring: model.Softmax, TopK: 1},
		})
	}
	m := testmodel.Random(cfg, 42) // weights would come from modelpack

	e, err := engine.New(cpu.New(cpu.Options{}), m, engine.Options{LazyExperts: true})
	if err != nil {
		panic(err)
	}
	var ids []int
	res, err := e.Generate(context.Background(), []int{0, 7, 3}, engine.GenerateOptions{MaxTokens: 3},
		func(id int) error { ids = append(ids, id); return nil })
	if err != nil {
		panic(err)
	}
	st := e.Stats()
	fmt.Println(len(ids), "tokens, stopped by", res.StopReason)
	fmt.Printf("experts loaded: %d of %d\n", st.ExpertsLoaded, st.ExpertsTotal)
	// Output:
	// 3 tokens, stopped by length
	// experts loaded: 8 of 16
}
