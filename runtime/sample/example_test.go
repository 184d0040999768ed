package sample_test

import (
	"fmt"
	"log"

	"github.com/moderuntime/mode/runtime/sample"
)

func Example() {
	logits := []float32{1.0, 3.2, 0.5, 3.0, -1.0}

	// Greedy decoding: the zero Params.
	greedy, err := sample.New(sample.Params{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("greedy:", greedy.Sample(logits, nil))

	// A repetition penalty of 2 halves the logit of id 1 (already
	// generated), so greedy decoding moves to id 3.
	penalised, err := sample.New(sample.Params{RepetitionPenalty: 2})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("penalised:", penalised.Sample(logits, []int{1}))

	// Seeded sampling restricted to the two most likely tokens. The same
	// seed gives the same ids on every platform; Reset replays them.
	s, err := sample.New(sample.Params{Temperature: 0.8, TopK: 2, Seed: 42})
	if err != nil {
		log.Fatal(err)
	}
	var ids []int
	for range 8 {
		ids = append(ids, s.Sample(logits, nil))
	}
	fmt.Println("sampled:", ids)
	s.Reset()
	fmt.Println("replayed first:", s.Sample(logits, nil) == ids[0])
	// Output:
	// greedy: 1
	// penalised: 3
	// sampled: [1 1 1 1 3 1 1 3]
	// replayed first: true
}
