package shaders_test

import (
	"fmt"
	"strings"

	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

// Source specialises a kernel's WGSL: here the prefill matmul for q4_0
// weights, 8 tokens per workgroup. Each specialisation is one pipeline.
func ExampleSource() {
	k := shaders.MatMul
	spec := shaders.Spec{Format: tensor.Q4_0, TT: 8}
	src, err := shaders.Source(k, spec)
	if err != nil {
		panic(err)
	}
	fmt.Println(k.Key(spec))
	fmt.Println(strings.Contains(src, "const TT: u32 = 8u;"), strings.Contains(src, "fn w_chunk"))
	// Output:
	// matmul.wgsl:main/q4_0/8/0/0
	// true true
}
