package hf_test

import (
	"fmt"
	"log"
	"os"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/synth"
)

// Write a small random Qwen2-MoE model as an HF directory, then load it.
func Example() {
	dir, err := os.MkdirTemp("", "hf-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	opts := synth.Default("qwen2_moe")
	opts.Seed = 7
	if err := synth.Write(dir, opts); err != nil {
		log.Fatal(err)
	}
	m, err := hf.Load(dir)
	if err != nil {
		log.Fatal(err)
	}
	c := m.Config
	f := c.FFN[0]
	fmt.Printf("%s: %d layers, dim %d, %d experts (top %d) + shared %v gated=%v, %d tensors\n",
		c.Arch, c.Layers, c.Dim, len(f.ExpertWidths), f.Router.TopK, f.SharedWidths, f.SharedGate, len(m.Weights))
	// Output: qwen2_moe: 4 layers, dim 64, 8 experts (top 2) + shared [64] gated=true, 155 tensors
}
