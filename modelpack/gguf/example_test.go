package gguf_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/moderuntime/mode/modelpack/gguf"
)

func Example() {
	var buf bytes.Buffer
	err := gguf.Write(&buf,
		[]gguf.KV{
			{Key: "general.architecture", Value: gguf.Scalar("llama")},
			{Key: "llama.context_length", Value: gguf.Scalar(uint32(4096))},
		},
		[]gguf.WTensor{{Name: "w", Type: gguf.TypeQ8_0, Dims: []int{32, 2}, Values: make([]float32, 64)}},
	)
	if err != nil {
		log.Fatal(err)
	}
	f, err := gguf.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "tiny.gguf")
	if err != nil {
		log.Fatal(err)
	}
	ctx, _ := f.Get("llama.context_length")
	n, _ := ctx.Int()
	info, _ := f.Tensor("w")
	fmt.Println("context length:", n)
	fmt.Println("tensor w:", info.Type, info.Shape(), info.Size, "bytes")
	// Output:
	// context length: 4096
	// tensor w: q8_0 [2 32] 68 bytes
}
