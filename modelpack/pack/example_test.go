package pack_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Pack a small random OLMoE model at q4_0. The routed experts, one shard
// each, are 4-bit; what every token uses (attention, embeddings, head) stays
// q8_0 unless Options.DenseQuant says otherwise.
func ExampleWrite() {
	tmp, err := os.MkdirTemp("", "pack-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "olmoe")
	o := synth.Default("olmoe")
	o.Seed = 7
	if err := synth.Write(src, o); err != nil {
		log.Fatal(err)
	}

	in, err := importer.Open(src, "")
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close()
	m, err := pack.Write(filepath.Join(tmp, "pack"), in.Source, in.Tokenizer, in.ChatTemplate, pack.Options{Quant: tensor.Q4_0})
	if err != nil {
		log.Fatal(err)
	}

	fmt.Println("quant:", m.QuantSummary())
	kinds := map[string]int{}
	for _, s := range m.Shards {
		kinds[s.Kind]++
		if s.Layer == 0 && (s.Kind == manifest.KindLayer || s.Expert == 0) {
			for _, t := range s.Tensors {
				if t.Name == "layers.0.wq" || t.Name == "layers.0.experts.0.up" {
					fmt.Printf("%s (%s shard): %s\n", t.Name, s.Kind, t.DType)
				}
			}
		}
	}
	fmt.Printf("shards: %d core, %d layer, %d expert\n", kinds[manifest.KindCore], kinds[manifest.KindLayer], kinds[manifest.KindExpert])
	// Output:
	// quant: q4_0 experts, q8_0 dense matrices
	// layers.0.wq (layer shard): q8_0
	// layers.0.experts.0.up (expert shard): q4_0
	// shards: 1 core, 2 layer, 16 expert
}
