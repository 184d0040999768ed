package distill

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/sample"
)

// Chunk cuts a token stream into sequences of at most seqLen tokens,
// dropping a final piece too short to predict anything.
func Chunk(ids []int, seqLen int) [][]int {
	var out [][]int
	for i := 0; i < len(ids); i += seqLen {
		s := ids[i:min(i+seqLen, len(ids))]
		if len(s) >= 2 {
			out = append(out, s)
		}
	}
	return out
}

// Split holds out the last ceil(frac·n) sequences (at least one) for
// evaluation and returns the rest for calibration.
func Split(seqs [][]int, frac float64) (train, heldout [][]int, err error) {
	if !(frac > 0 && frac < 1) {
		return nil, nil, fmt.Errorf("holdout fraction %v must be between 0 and 1", frac)
	}
	if len(seqs) < 2 {
		return nil, nil, fmt.Errorf("%d calibration sequences: need at least 2 to hold one out", len(seqs))
	}
	h := min(max(1, int(math.Ceil(frac*float64(len(seqs))))), len(seqs)-1)
	return seqs[:len(seqs)-h], seqs[len(seqs)-h:], nil
}

// SelfGenerate samples n sequences of seqLen tokens from the teacher at
// temperature 1, each starting from BOS with its own seed derived from seed.
// A sequence that reaches an end-of-sequence token is cut there.
func SelfGenerate(ctx context.Context, teacher *model.Model, n, seqLen int, seed uint64, threads int) ([][]int, error) {
	c := &teacher.Config
	if n < 1 || seqLen < 2 {
		return nil, fmt.Errorf("self-generate: %d sequences of %d tokens", n, seqLen)
	}
	if c.BOS < 0 {
		return nil, errors.New("self-generate: the teacher has no BOS token to start from")
	}
	seqLen = min(seqLen, c.MaxSeq)
	out := make([][]int, n)
	errs := make([]error, n)
	nw := workers(n, threads)
	engines := make([]*engine.Engine, nw)
	for w := range engines {
		// One single-threaded backend per worker: sequences run in parallel.
		e, err := engine.New(cpu.New(cpu.Options{Threads: 1}), teacher, engine.Options{MaxSeq: seqLen})
		if err != nil {
			return nil, fmt.Errorf("self-generate: %w", err)
		}
		engines[w] = e
	}
	parallel(n, nw, func(w, i int) {
		e := engines[w]
		e.Reset()
		s, err := sample.New(sample.Params{Temperature: 1, Seed: seed*1000003 + uint64(i)})
		if err != nil {
			errs[i] = err
			return
		}
		ids := []int{c.BOS}
		_, err = e.Generate(ctx, ids, engine.GenerateOptions{MaxTokens: seqLen - 1, Sampler: s}, func(id int) error {
			ids = append(ids, id)
			return nil
		})
		out[i], errs[i] = ids, err
	})
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("self-generate: %w", err)
	}
	return out, nil
}
