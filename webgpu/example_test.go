package webgpu_test

import (
	"context"
	"fmt"
	"log"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/webgpu"
)

// A Backend runs the engine unchanged. The example needs a WebGPU adapter
// (lavapipe will do), so it is compiled but not run by go test.
func Example() {
	b, err := webgpu.Open(webgpu.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	cfg := testmodel.Config(32, 2, 4, 2, 97)
	for range cfg.Layers {
		cfg.FFN = append(cfg.FFN, model.FFN{SharedWidths: []int{40}})
	}
	e, err := engine.New(b, testmodel.Random(cfg, 1), engine.Options{})
	if err != nil {
		log.Fatal(err)
	}
	logits, err := e.Forward(context.Background(), []int{0, 5, 17})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(logits))
}
