package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/tensor"
)

type pair struct{ layer, expert int }

// TestLazyEqualsEager: with lazy experts the engine generates the same
// tokens, and it loads exactly the (layer, expert) pairs its routers chose.
func TestLazyEqualsEager(t *testing.T) {
	cfg := family("olmoe", false)
	m := testmodel.Random(cfg, 3)
	gen := func(o engine.Options) ([]int, engine.Stats) {
		e, err := engine.New(cpu.New(cpu.Options{}), m, o)
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		if _, err := e.Generate(context.Background(), []int{0, 9, 4}, engine.GenerateOptions{MaxTokens: 6, Stop: []int{}},
			func(id int) error { out = append(out, id); return nil }); err != nil {
			t.Fatal(err)
		}
		return out, e.Stats()
	}
	eager, es := gen(engine.Options{})
	routed := map[pair]bool{}
	lazy, ls := gen(engine.Options{LazyExperts: true, Trace: func(l, _ int, r [][]routing.Choice) {
		for _, cs := range r {
			for _, c := range cs {
				routed[pair{l, c.Expert}] = true
			}
		}
	}})
	if !slices.Equal(eager, lazy) {
		t.Fatalf("lazy tokens %v, eager %v", lazy, eager)
	}
	if es.ExpertsLoaded != es.ExpertsTotal {
		t.Errorf("eager loaded %d of %d experts", es.ExpertsLoaded, es.ExpertsTotal)
	}
	if ls.ExpertsLoaded != len(routed) {
		t.Errorf("lazy loaded %d experts, routers chose %d distinct (layer, expert) pairs", ls.ExpertsLoaded, len(routed))
	}
	if ls.ExpertsLoaded >= ls.ExpertsTotal {
		t.Errorf("lazy loaded all %d experts: the test does not exercise sparsity", ls.ExpertsTotal)
	}
}

// TestCapacity: a capacity limit changes a prefill batch's routing but never
// a single decoded token's.
func TestCapacity(t *testing.T) {
	cfg := family("mode", false)
	limited := cfg
	limited.FFN = slices.Clone(cfg.FFN)
	for i := range limited.FFN {
		r := *limited.FFN[i].Router
		r.CapacityFactor = 0.5
		limited.FFN[i].Router = &r
	}
	m := testmodel.Random(cfg, 5)
	ml := &model.Model{Config: limited, Weights: m.Weights}
	ids := []int{0, 5, 17, 42, 3, 96, 11, 64}
	run := func(mm *model.Model, batch int) []float32 {
		e, err := engine.New(cpu.New(cpu.Options{}), mm, engine.Options{MaxBatch: batch})
		if err != nil {
			t.Fatal(err)
		}
		var l []float32
		if batch == 1 {
			for _, id := range ids {
				l, err = e.Forward(context.Background(), []int{id})
			}
		} else {
			l, err = e.Forward(context.Background(), ids)
		}
		if err != nil {
			t.Fatal(err)
		}
		return slices.Clone(l)
	}
	if !slices.Equal(run(m, 1), run(ml, 1)) {
		t.Error("capacity changed single-token decode")
	}
	if slices.Equal(run(m, len(ids)), run(ml, len(ids))) {
		t.Error("capacity factor 0.5 did not change an 8-token prefill")
	}
}

func TestForwardErrors(t *testing.T) {
	m := testmodel.Random(family("llama", false), 1)
	e, err := engine.New(cpu.New(cpu.Options{}), m, engine.Options{MaxSeq: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Forward(context.Background(), []int{97}); err == nil || !strings.Contains(err.Error(), "outside vocab") {
		t.Errorf("out-of-vocab id: %v", err)
	}
	if _, err := e.Forward(context.Background(), []int{1, 2, 3, 4, 5}); !errors.Is(err, engine.ErrContextFull) {
		t.Errorf("overlong prompt: %v", err)
	}
	if _, err := e.Forward(context.Background(), nil); err == nil {
		t.Error("empty forward succeeded")
	}
	res, err := e.Generate(context.Background(), []int{0, 1}, engine.GenerateOptions{Stop: []int{}}, func(int) error { return nil })
	if err != nil || res.StopReason != "length" || res.Generated != 3 {
		t.Errorf("generate to a full context: %+v, %v", res, err)
	}
	delete(m.Weights, "layers.1.wq")
	if _, err := engine.New(cpu.New(cpu.Options{}), m, engine.Options{}); err == nil || !strings.Contains(err.Error(), "layers.1.wq") {
		t.Errorf("missing tensor: %v", err)
	}
}

// TestExpertBudget: with a budget of about two experts the cache evicts
// least-recently-used experts and reloads them, and the tokens do not change.
func TestExpertBudget(t *testing.T) {
	cfg := family("olmoe", false)
	m := testmodel.Random(cfg, 3)
	expertBytes := int64(3 * 16 * cfg.Dim * 4)
	gen := func(o engine.Options) ([]int, engine.Stats) {
		e, err := engine.New(cpu.New(cpu.Options{}), m, o)
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		if _, err := e.Generate(context.Background(), []int{0, 9, 4}, engine.GenerateOptions{MaxTokens: 10, Stop: []int{}},
			func(id int) error { out = append(out, id); return nil }); err != nil {
			t.Fatal(err)
		}
		return out, e.Stats()
	}
	want, _ := gen(engine.Options{})
	got, st := gen(engine.Options{ExpertBudget: 2 * expertBytes})
	if !slices.Equal(got, want) {
		t.Fatalf("tokens with a budget %v, without %v", got, want)
	}
	if st.ExpertEvictions == 0 || st.ExpertBytesEvicted != int64(st.ExpertEvictions)*expertBytes {
		t.Errorf("evictions %d, bytes evicted %d (expert is %d bytes)", st.ExpertEvictions, st.ExpertBytesEvicted, expertBytes)
	}
	// top-4 of one layer must stay resident together even over the budget
	if st.ExpertBytesResident > 4*expertBytes {
		t.Errorf("resident %d bytes, more than one layer's top-4 (%d)", st.ExpertBytesResident, 4*expertBytes)
	}
	if st.ExpertsLoaded != st.ExpertMisses || st.ExpertsLoaded-st.ExpertEvictions != st.ExpertsResident {
		t.Errorf("cache counters disagree: %+v", st)
	}
	_, unl := gen(engine.Options{LazyExperts: true})
	if unl.ExpertEvictions != 0 || unl.HitRate() <= st.HitRate() {
		t.Errorf("unlimited cache: %d evictions, hit rate %.2f vs %.2f with a budget", unl.ExpertEvictions, unl.HitRate(), st.HitRate())
	}
}

// TestExpertMap: the map reports what is resident, what the last token was
// routed to, and per-layer hit rates.
func TestExpertMap(t *testing.T) {
	m := testmodel.Random(family("olmoe", false), 3)
	var last [][]routing.Choice
	e, err := engine.New(cpu.New(cpu.Options{}), m, engine.Options{LazyExperts: true,
		Trace: func(l, _ int, r [][]routing.Choice) {
			if l == 0 {
				last = r
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	before := e.ExpertMap()
	if before.HitRate[0] != -1 || len(before.Resident[0]) != 0 || before.Experts[0] != 8 {
		t.Fatalf("before any token: %+v", before)
	}
	for _, id := range []int{0, 5, 9, 5, 9} {
		if _, err := e.Forward(context.Background(), []int{id}); err != nil {
			t.Fatal(err)
		}
	}
	em := e.ExpertMap()
	var want []int
	for _, c := range last[len(last)-1] {
		want = append(want, c.Expert)
	}
	if !slices.Equal(em.LastRouted[0], want) {
		t.Errorf("last routed %v, trace says %v", em.LastRouted[0], want)
	}
	if st := e.Stats(); len(em.Resident[0])+len(em.Resident[1])+len(em.Resident[2]) != st.ExpertsResident {
		t.Errorf("resident %v, stats say %d", em.Resident, st.ExpertsResident)
	}
	if em.HitRate[0] <= 0 || em.HitRate[0] >= 1 {
		t.Errorf("layer 0 hit rate %v after repeated tokens", em.HitRate[0])
	}
}

// slowSource serves a model's experts after a delay, counting how many
// loads run at once, and fails the experts in fail.
type slowSource struct {
	m     *model.Model
	delay time.Duration
	fail  map[pair]bool

	mu              sync.Mutex
	running, most   int
	loads, canceled int
}

func (s *slowSource) LoadExpert(ctx context.Context, l, x int) ([]*tensor.Tensor, error) {
	s.mu.Lock()
	s.running++
	s.most = max(s.most, s.running)
	s.loads++
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.running--; s.mu.Unlock() }()
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		s.mu.Lock()
		s.canceled++
		s.mu.Unlock()
		return nil, ctx.Err()
	}
	if s.fail[pair{l, x}] {
		return nil, fmt.Errorf("expert %d of layer %d: no such shard", x, l)
	}
	var ts []*tensor.Tensor
	for _, sp := range s.m.Config.ExpertSpec(l, x) {
		ts = append(ts, s.m.Weights[sp.Name])
	}
	return ts, nil
}

// TestLazyLoadsTogether: a layer's missing experts are loaded from the
// source several at once (at most 4) and the tokens do not change; when
// one fails, the error names it and no load outlives Generate.
func TestLazyLoadsTogether(t *testing.T) {
	cfg := family("olmoe", false)
	m := testmodel.Random(cfg, 3)
	prompt := []int{0, 9, 4, 17, 42, 3}
	gen := func(o engine.Options) ([]int, error) {
		e, err := engine.New(cpu.New(cpu.Options{}), m, o)
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		_, err = e.Generate(context.Background(), prompt, engine.GenerateOptions{MaxTokens: 4, Stop: []int{}},
			func(id int) error { out = append(out, id); return nil })
		return out, err
	}
	want, err := gen(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := &slowSource{m: m, delay: 20 * time.Millisecond}
	got, err := gen(engine.Options{Experts: src})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("loading together: tokens %v, eager %v", got, want)
	}
	if src.most < 2 || src.most > 4 {
		t.Errorf("at most %d loads ran at once (%d in all), want 2 to 4", src.most, src.loads)
	}
	t.Logf("%d loads, at most %d at once", src.loads, src.most)

	// the prefill routes layer 0's tokens to several experts: fail one
	var first []int
	e, err := engine.New(cpu.New(cpu.Options{}), m, engine.Options{LazyExperts: true, Trace: func(l, _ int, r [][]routing.Choice) {
		for _, cs := range r {
			for _, c := range cs {
				if l == 0 && !slices.Contains(first, c.Expert) {
					first = append(first, c.Expert)
				}
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Forward(context.Background(), prompt); err != nil {
		t.Fatal(err)
	}
	if len(first) < 3 {
		t.Fatalf("the prefill routes layer 0 to %v: too few to fail one among others", first)
	}
	bad := &slowSource{m: m, delay: 20 * time.Millisecond, fail: map[pair]bool{{0, first[1]}: true}}
	if _, err := gen(engine.Options{Experts: bad}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("expert %d of layer 0", first[1])) {
		t.Errorf("a failing expert: %v", err)
	}
	bad.mu.Lock()
	defer bad.mu.Unlock()
	if bad.running != 0 {
		t.Errorf("%d loads still running after Generate returned", bad.running)
	}
}
