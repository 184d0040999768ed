package distill

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

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

// freshSeedOffset separates the seeds of fresh training samples from those
// of a calibration sample drawn by SelfGenerate with the same seed: fresh
// sequence i uses seed (s+2⁴⁰)·1000003+i, which no SelfGenerate sequence
// j < 2⁵⁹ of seed s uses.
const freshSeedOffset = 1 << 40

// freshData draws training sequences from the teacher as training needs
// them, sampling at temperature 1 from BOS exactly as SelfGenerate does but
// with freshSeedOffset added to the seed, and keeps the teacher's logits
// from the sampling pass for the KL term. A sample equal to a held-out
// sequence is never trained on. When the training cycles past
// Train.Fresh sequences it reuses them, their logits cached or recomputed.
type freshData struct {
	teacher *model.Model
	tn      *net
	heldout [][]int
	seqLen  int
	seed    uint64
	n       int
	cache   bool

	mu      sync.Mutex
	engines []*engine.Engine
	ids     [][]int
	done    []bool
	logits  [][]float32
	dropped int
	tokens  int
	teach   func(i int, ids []int) []float32
}

func newFreshData(teacher *model.Model, tn *net, train, heldout [][]int, o Options) *freshData {
	seqLen := o.Train.SeqLen
	if seqLen == 0 {
		for _, s := range train {
			seqLen = max(seqLen, len(s))
		}
	}
	seqLen = min(seqLen, teacher.Config.MaxSeq)
	n := o.Train.Fresh
	return &freshData{
		teacher: teacher, tn: tn, heldout: heldout, seqLen: seqLen, seed: o.Seed + freshSeedOffset, n: n,
		cache: int64(n)*int64(seqLen)*int64(teacher.Config.Vocab)*4 <= maxTeacherCache,
		ids:   make([][]int, n), done: make([]bool, n), logits: make([][]float32, n),
		teach: cachedTeacher(tn, n, n*seqLen),
	}
}

func (f *freshData) data() trainData { return trainData{n: f.n, get: f.get} }

// stats returns the sequences and tokens sampled so far and how many
// samples were dropped for equalling a held-out sequence.
func (f *freshData) stats() (seqs, tokens, dropped int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.done {
		if d {
			seqs++
		}
	}
	return seqs, f.tokens, f.dropped
}

func (f *freshData) get(w, i int) ([]int, []float32, error) {
	f.mu.Lock()
	done, ids, lg := f.done[i], f.ids[i], f.logits[i]
	for len(f.engines) <= w {
		f.engines = append(f.engines, nil)
	}
	e := f.engines[w]
	f.mu.Unlock()
	if done {
		if ids == nil || lg != nil {
			return ids, lg, nil
		}
		return ids, f.teach(i, ids), nil
	}
	if e == nil {
		var err error
		// One single-threaded backend per worker: sequences run in parallel.
		if e, err = engine.New(cpu.New(cpu.Options{Threads: 1}), f.teacher, engine.Options{MaxSeq: f.seqLen}); err != nil {
			return nil, nil, fmt.Errorf("fresh samples: %w", err)
		}
	}
	ids, lg, err := sampleSeq(e, &f.teacher.Config, f.seqLen, f.seed*1000003+uint64(i))
	if err != nil {
		return nil, nil, fmt.Errorf("fresh samples: %w", err)
	}
	if slices.ContainsFunc(f.heldout, func(h []int) bool { return slices.Equal(h, ids) }) {
		ids, lg = nil, nil
	}
	f.mu.Lock()
	f.engines[w] = e
	f.done[i], f.ids[i] = true, ids
	if ids == nil {
		f.dropped++
	} else {
		f.tokens += len(ids)
	}
	if f.cache {
		f.logits[i] = lg
	}
	f.mu.Unlock()
	return ids, lg, nil
}

// sampleSeq samples up to seqLen tokens from BOS at temperature 1 as
// SelfGenerate's engine.Generate does, returning the ids and the teacher's
// logits at every position [len(ids), vocab] (the last row, which predicts
// past the sequence, is zero).
func sampleSeq(e *engine.Engine, c *model.Config, seqLen int, seed uint64) ([]int, []float32, error) {
	e.Reset()
	s, err := sample.New(sample.Params{Temperature: 1, Seed: seed})
	if err != nil {
		return nil, nil, err
	}
	V := c.Vocab
	ids := []int{c.BOS}
	logits := make([]float32, seqLen*V)
	l, err := e.Forward(context.Background(), ids)
	for err == nil && len(ids) < seqLen {
		copy(logits[(len(ids)-1)*V:len(ids)*V], l)
		id := s.Sample(l, ids)
		if slices.Contains(c.EOS, id) {
			break
		}
		ids = append(ids, id)
		if len(ids) < seqLen {
			l, err = e.Forward(context.Background(), []int{id})
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return ids, logits[:len(ids)*V], nil
}
