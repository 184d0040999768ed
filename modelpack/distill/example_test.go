package distill_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/distill"
	"github.com/moderuntime/mode/runtime/model"
)

// Distil a small dense model into 4 experts, every token using all of
// them: the student then computes exactly what the teacher does.
func ExampleDistill() {
	cfg := testmodel.Config(32, 2, 4, 2, 64)
	for range cfg.Layers {
		cfg.FFN = append(cfg.FFN, model.FFN{SharedWidths: []int{48}})
	}
	teacher := testmodel.Random(cfg, 1)
	r := rand.New(rand.NewPCG(1, 2))
	var ids []int
	for range 200 {
		ids = append(ids, r.IntN(cfg.Vocab))
	}
	train, heldout, err := distill.Split(distill.Chunk(ids, 20), 0.2)
	if err != nil {
		panic(err)
	}
	student, rep, err := distill.Distill(teacher, train, heldout, distill.Options{Experts: 4, TopK: 4, Balanced: true, Seed: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println("arch:", student.Config.Arch)
	fmt.Println("widths:", rep.Layers[0].ExpertWidths)
	fmt.Printf("agreement: %.2f\n", rep.Top1Agreement)
	// Output:
	// arch: mode
	// widths: [12 12 12 12]
	// agreement: 1.00
}

// Compare a student with its teacher on other text: here the student that
// keeps all 4 experts per token, which computes what the teacher does.
func ExampleCompare() {
	cfg := testmodel.Config(32, 2, 4, 2, 64)
	for range cfg.Layers {
		cfg.FFN = append(cfg.FFN, model.FFN{SharedWidths: []int{48}})
	}
	teacher := testmodel.Random(cfg, 1)
	r := rand.New(rand.NewPCG(3, 4))
	var ids []int
	for range 200 {
		ids = append(ids, r.IntN(cfg.Vocab))
	}
	seqs := distill.Chunk(ids, 20)
	student, _, err := distill.Distill(teacher, seqs[:8], seqs[8:], distill.Options{Experts: 4, TopK: 4, Seed: 1})
	if err != nil {
		panic(err)
	}
	rep, err := distill.Compare(teacher, student, seqs[:4], 1)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d experts, top-%d: agreement %.2f over %d positions\n", rep.Experts, rep.TopK, rep.Top1Agreement, rep.HeldoutPositions)
	// Output:
	// 4 experts, top-4: agreement 1.00 over 76 positions
}
