package gptq

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Stats holds, for every weight matrix a model multiplied during
// calibration, the second moment of its inputs: H = Σ w·x·xᵀ over the input
// rows x it saw, each weighted by w (the square of the routing weight for
// a routed expert, 1 elsewhere). GPTQ minimises ‖(W−Q)·X‖², whose Hessian
// in each row of W is exactly this H.
type Stats struct {
	mu sync.Mutex
	h  map[string]*Hessian
}

// Hessian is one matrix's input second moment.
type Hessian struct {
	N    int       // input dimension (the matrix's columns)
	Sum  []float64 // N×N, row-major; only the upper triangle is accumulated until Full
	Rows int       // input rows seen
	full bool
}

// Get returns the statistics of the matrix named name, nil when
// calibration never multiplied it (a gathered embedding table, an expert
// no token was routed to).
func (s *Stats) Get(name string) *Hessian {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.h[name]
	if h != nil && !h.full {
		for i := range h.N {
			for j := range i {
				h.Sum[i*h.N+j] = h.Sum[j*h.N+i]
			}
		}
		h.full = true
	}
	return h
}

// Names lists the matrices with statistics.
func (s *Stats) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.h {
		out = append(out, n)
	}
	return out
}

// add accumulates w·x·xᵀ for each n-wide row of xs.
func (s *Stats) add(name string, xs []float32, n int, w []float32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.h[name]
	if h == nil {
		h = &Hessian{N: n, Sum: make([]float64, n*n)}
		s.h[name] = h
	}
	if h.N != n {
		return // cannot happen: one name, one matrix
	}
	for r := range len(xs) / n {
		x := xs[r*n : (r+1)*n]
		wr := 1.0
		if w != nil {
			wr = float64(w[r])
		}
		if wr == 0 {
			continue
		}
		for i, xi := range x {
			if xi == 0 {
				continue
			}
			a := wr * float64(xi)
			row := h.Sum[i*n:]
			for j := i; j < n; j++ {
				row[j] += a * float64(x[j])
			}
		}
		h.Rows++
	}
	h.full = false
}

// Collect runs m on the CPU over each calibration sequence, one token at a
// time (so the output head sees every position, not only a prefill's
// last), and returns the input statistics of every matrix it multiplied.
// It keeps an f32 copy of the expert matrices to compute their hidden
// activations, so it is for models that fit in memory.
func Collect(ctx context.Context, m *model.Model, seqs [][]int, threads int) (*Stats, error) {
	rec := &recorder{Backend: cpu.New(cpu.Options{Threads: threads}), stats: &Stats{h: map[string]*Hessian{}}, names: map[backend.Weight]string{}, tensors: map[backend.Weight]*tensor.Tensor{}, f32: map[backend.Weight][]float32{}}
	maxLen := 0
	for _, s := range seqs {
		maxLen = max(maxLen, len(s))
	}
	if maxLen == 0 {
		return nil, fmt.Errorf("gptq: no calibration tokens")
	}
	if maxLen > m.Config.MaxSeq {
		return nil, fmt.Errorf("gptq: calibration sequence of %d tokens is longer than the model's context of %d", maxLen, m.Config.MaxSeq)
	}
	e, err := engine.New(rec, m, engine.Options{MaxSeq: maxLen, MaxBatch: 1})
	if err != nil {
		return nil, fmt.Errorf("gptq: %w", err)
	}
	for i, s := range seqs {
		e.Reset()
		for _, id := range s {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if id < 0 || id >= m.Config.Vocab {
				return nil, fmt.Errorf("gptq: calibration sequence %d: token %d outside the vocabulary of %d", i, id, m.Config.Vocab)
			}
			if _, err := e.Forward(context.Background(), []int{id}); err != nil {
				return nil, fmt.Errorf("gptq: calibration sequence %d: %w", i, err)
			}
		}
		if rec.err != nil {
			return nil, rec.err
		}
	}
	return rec.stats, nil
}

// recorder is the CPU backend with every matrix product's input recorded
// into Stats. Embedding backend.Backend (the interface, not the CPU type)
// hides the CPU's optional fast paths, so the engine calls MatMul and MoE
// for everything.
type recorder struct {
	backend.Backend
	stats   *Stats
	names   map[backend.Weight]string
	tensors map[backend.Weight]*tensor.Tensor
	f32     map[backend.Weight][]float32 // decoded on first use: expert gate and up, shared gates
	err     error
}

func (r *recorder) Upload(t *tensor.Tensor) (backend.Weight, error) {
	w, err := r.Backend.Upload(t)
	if err != nil {
		return nil, err
	}
	r.names[w] = t.Name
	r.tensors[w] = t
	return w, nil
}

func (r *recorder) read(x backend.Buf) []float32 {
	v := make([]float32, x.Rows()*x.Cols())
	if err := r.Backend.Read(x, v); err != nil && r.err == nil {
		r.err = fmt.Errorf("gptq: reading activations: %w", err)
	}
	return v
}

func (r *recorder) MatMul(dst, x backend.Buf, w, bias backend.Weight) {
	r.Backend.MatMul(dst, x, w, bias)
	if name, ok := r.names[w]; ok {
		r.stats.add(name, r.read(x), x.Cols(), nil)
	}
}

// MoE records each expert's gate/up input (the rows routed to it) and its
// down input (silu(gate·x)·(up·x) for those rows), weighted by the square
// of the routing weight that scales the expert's output in the layer's
// sum; shared experts see every row, weighted by their sigmoid gate.
func (r *recorder) MoE(dst, x backend.Buf, rt backend.Routes, f *backend.FFN) {
	r.Backend.MoE(dst, x, rt, f)
	xs := r.read(x)
	T, D := x.Rows(), x.Cols()
	sharedW := make([]float32, T)
	for t := range sharedW {
		sharedW[t] = 1
	}
	if f.SharedGate != nil {
		g, err := r.weights(f.SharedGate)
		if err != nil {
			r.fail(err)
			return
		}
		for t := range T {
			s := routing.Sigmoid(dot(g, xs[t*D:(t+1)*D]))
			sharedW[t] = s * s
		}
	}
	for _, ex := range f.Shared {
		r.expert(ex, xs, D, sharedW)
	}
	if rt == nil || len(f.Experts) == 0 {
		return
	}
	choices, err := r.Backend.ReadRoutes(rt)
	if err != nil {
		r.fail(fmt.Errorf("gptq: reading routes: %w", err))
		return
	}
	for e, ex := range f.Experts {
		if ex == nil {
			continue
		}
		w := make([]float32, T)
		seen := false
		for t, cs := range choices {
			for _, c := range cs {
				if c.Expert == e {
					w[t] = c.Weight * c.Weight
					seen = seen || w[t] != 0
				}
			}
		}
		if seen {
			r.expert(ex, xs, D, w)
		}
	}
}

func (r *recorder) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// expert records the inputs of one expert's first block for the rows with
// nonzero w. A deeper expert's later blocks are not recorded: their
// matrices get no statistics and are rounded as without calibration.
func (r *recorder) expert(ex *backend.Expert, xs []float32, D int, w []float32) {
	gate, err := r.weights(ex.Gate)
	if err != nil {
		r.fail(err)
		return
	}
	up, err := r.weights(ex.Up)
	if err != nil {
		r.fail(err)
		return
	}
	F := len(gate) / D
	hs := make([]float32, len(w)*F)
	for t := range w {
		if w[t] == 0 {
			continue
		}
		x := xs[t*D : (t+1)*D]
		for i := range F {
			g := dot(gate[i*D:(i+1)*D], x)
			var a float32
			switch ex.Act {
			case model.ActGELUTanh:
				a = cpu.GELUTanh(g)
			case model.ActReLU2:
				a = cpu.ReLU2(g)
			default:
				a = g / (1 + float32(math.Exp(float64(-g))))
			}
			hs[t*F+i] = a * dot(up[i*D:(i+1)*D], x)
		}
	}
	r.stats.add(r.names[ex.Gate], xs, D, w)
	r.stats.add(r.names[ex.Up], xs, D, w)
	r.stats.add(r.names[ex.Down], hs, F, w)
}

// weights returns w's values as f32, decoding them once.
func (r *recorder) weights(w backend.Weight) ([]float32, error) {
	if v, ok := r.f32[w]; ok {
		return v, nil
	}
	t := r.tensors[w]
	if t == nil {
		return nil, fmt.Errorf("gptq: no tensor for weight %s", r.names[w])
	}
	v, err := t.Float32s()
	if err != nil {
		return nil, fmt.Errorf("gptq: decoding %s: %w", t.Name, err)
	}
	r.f32[w] = v
	return v, nil
}

func dot(a, b []float32) float32 {
	var s float32
	for i, v := range a {
		s += v * b[i]
	}
	return s
}
