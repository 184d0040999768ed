package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/sample"
)

// Sampler picks the next token from logits; history is the context so far.
// runtime/sample provides the implementations.
type Sampler interface {
	Sample(logits []float32, history []int) int
}

// Greedy is the argmax sampler (ties go to the lowest id).
type Greedy struct{}

func (Greedy) Sample(logits []float32, _ []int) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return best
}

// GenerateOptions configures Generate.
type GenerateOptions struct {
	MaxTokens int     // most tokens to generate; 0 means until the context is full
	Sampler   Sampler // nil means greedy
	Stop      []int   // ids that end generation (not emitted); nil means the model's EOS
}

// Result summarises one Generate call.
type Result struct {
	Prompt, Generated int
	StopReason        string // "stop" (a stop token), "length" (MaxTokens or context), "cancelled"
	Prefill, Decode   time.Duration
}

// PrefillTokensPerSecond and DecodeTokensPerSecond are 0 when nothing ran.
func (r Result) PrefillTokensPerSecond() float64 { return rate(r.Prompt, r.Prefill) }
func (r Result) DecodeTokensPerSecond() float64 {
	// the first generated token comes from the prefill's logits
	return rate(r.Generated-1, r.Decode)
}

func rate(n int, d time.Duration) float64 {
	if n <= 0 || d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// devicePick returns how to choose a token on the backend for sampler s,
// or nil when s must see the logits on the host.
func (e *Engine) devicePick(s Sampler) func(backend.Buf) (int, error) {
	switch g := s.(type) {
	case Greedy:
		return e.argmax
	case *sample.Sampler:
		if g.Greedy() {
			return e.argmax
		}
		ds, ok := e.b.(backend.DeviceSampler)
		if !ok || !ds.CanSample(g.Params()) {
			return nil
		}
		p := g.Params()
		return func(logits backend.Buf) (int, error) { return ds.SampleDevice(logits, p, g.NextDraw()) }
	}
	return nil
}

// Generate feeds prompt (appended to the current context) and then samples
// tokens, calling emit with each until a stop token, MaxTokens, a full
// context, ctx's cancellation or an error from emit. ctx reaches every
// expert fetch the generation waits for, so cancelling it also stops a
// stalled download; the error then wraps ctx's and StopReason is
// "cancelled".
func (e *Engine) Generate(ctx context.Context, prompt []int, o GenerateOptions, emit func(id int) error) (Result, error) {
	res := Result{Prompt: len(prompt)}
	if len(prompt) == 0 {
		return res, fmt.Errorf("generate: empty prompt (start with the BOS token)")
	}
	s := o.Sampler
	if s == nil {
		s = Greedy{}
	}
	stop := o.Stop
	if stop == nil {
		stop = e.cfg.EOS
	}
	// A greedy sampler needs only the argmax, and a sampler the backend can
	// run draws on the device: either way one token id comes back per step,
	// not the logits.
	pick := e.devicePick(s)
	var logits []float32
	next := -1
	forward := func(ids []int) error {
		var err error
		if pick != nil {
			next, err = e.forward(ctx, ids, pick)
		} else {
			logits, err = e.Forward(ctx, ids)
		}
		if err != nil && ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			res.StopReason = "cancelled"
		}
		return err
	}
	history := slices.Clone(prompt)
	t0 := time.Now()
	err := forward(prompt)
	res.Prefill = time.Since(t0)
	if err != nil {
		return res, err
	}
	t1 := time.Now()
	defer func() { res.Decode = time.Since(t1) }()
	for {
		if err := ctx.Err(); err != nil {
			res.StopReason = "cancelled"
			res.Decode = time.Since(t1)
			return res, err
		}
		id := next
		if pick == nil {
			id = s.Sample(logits, history)
		}
		if slices.Contains(stop, id) {
			res.StopReason = "stop"
			res.Decode = time.Since(t1)
			return res, nil
		}
		res.Generated++
		history = append(history, id)
		if err := emit(id); err != nil {
			res.Decode = time.Since(t1)
			return res, err
		}
		if (o.MaxTokens > 0 && res.Generated >= o.MaxTokens) || e.pos >= e.opt.MaxSeq {
			res.StopReason = "length"
			res.Decode = time.Since(t1)
			return res, nil
		}
		if err := forward([]int{id}); err != nil {
			res.Decode = time.Since(t1)
			return res, err
		}
	}
}
