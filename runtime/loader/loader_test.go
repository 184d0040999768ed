package loader_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moderuntime/mode/modelpack/manifest"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/importer"
)

func packOf(t *testing.T, arch string) (string, *manifest.Manifest) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := synth.Write(src, synth.Default(arch)); err != nil {
		t.Fatal(err)
	}
	in, err := importer.Open(src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dir := filepath.Join(t.TempDir(), "pack")
	m, err := pack.Write(dir, in.Source, in.Tokenizer, in.ChatTemplate, pack.Options{Quant: tensor.Q8_0})
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func generate(t *testing.T, p *loader.Pack) []int {
	t.Helper()
	e, err := engine.New(cpu.New(cpu.Options{}), p.Model, engine.Options{Experts: p})
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	prompt := p.Tokenizer.Encode("the cat")
	_, err = e.Generate(context.Background(), prompt, engine.GenerateOptions{MaxTokens: 8, Stop: []int{}},
		func(id int) error { out = append(out, id); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpenURL: a pack served over HTTP opens by its manifest URL, fetches
// only routed experts, and generates what the local pack generates.
func TestOpenURL(t *testing.T) {
	dir, _ := packOf(t, "mixtral")
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	ctx := context.Background()
	local, err := loader.Open(ctx, dir, shard.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	remote, err := loader.Open(ctx, srv.URL+"/manifest.json", shard.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := generate(t, local), generate(t, remote); !slices.Equal(a, b) {
		t.Fatalf("remote %v, local %v", b, a)
	}
	st := remote.Stats()
	if st.ExpertFetches == 0 || st.Bytes == 0 || st.Bytes > st.TotalBytes {
		t.Errorf("stats %+v", st)
	}
}

// TestMissingExpertShard: an expert shard that is gone surfaces as an
// error naming the shard when a token is routed to it.
func TestMissingExpertShard(t *testing.T) {
	dir, m := packOf(t, "olmoe")
	for _, s := range m.Shards {
		if s.Kind == manifest.KindExpert {
			os.Remove(filepath.Join(dir, s.Pieces[0].File))
		}
	}
	p, err := loader.Open(context.Background(), dir, shard.HTTPOptions{})
	if err != nil {
		t.Fatal(err) // core and layer shards are intact
	}
	e, err := engine.New(cpu.New(cpu.Options{}), p.Model, engine.Options{Experts: p})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Forward([]int{1, 2, 3})
	if err == nil || !strings.Contains(err.Error(), "shard layer.0.expert.") {
		t.Fatalf("forward with missing expert shards: %v", err)
	}
}

// TestPrefetch: pre-gating prefetch changes no token, its predictions are
// mostly used, and the experts fetched are exactly those routed to plus
// those prefetched.
func TestPrefetch(t *testing.T) {
	dir, _ := packOf(t, "olmoe")
	ctx := context.Background()
	run := func(prefetch bool) ([]int, *loader.Pack, engine.Stats, map[[2]int]bool) {
		p, err := loader.Open(ctx, dir, shard.HTTPOptions{})
		if err != nil {
			t.Fatal(err)
		}
		routed := map[[2]int]bool{}
		e, err := engine.New(cpu.New(cpu.Options{}), p.Model, engine.Options{Experts: p, Prefetch: prefetch,
			Trace: func(l, _ int, r [][]routing.Choice) {
				for _, cs := range r {
					for _, c := range cs {
						routed[[2]int{l, c.Expert}] = true
					}
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		if _, err := e.Generate(ctx, p.Tokenizer.Encode("once upon"), engine.GenerateOptions{MaxTokens: 12, Stop: []int{}},
			func(id int) error { out = append(out, id); return nil }); err != nil {
			t.Fatal(err)
		}
		return out, p, e.Stats(), routed
	}
	want, _, _, _ := run(false)
	got, p, es, routed := run(true)
	if !slices.Equal(got, want) {
		t.Fatalf("with prefetch %v, without %v", got, want)
	}
	st := p.Stats()
	if es.Prefetches == 0 || st.Prefetched == 0 || st.PrefetchHits == 0 {
		t.Fatalf("prefetch did nothing: engine %d, pack %+v", es.Prefetches, st)
	}
	unused := p.Unused()
	t.Logf("prefetched %d experts, %d used before being routed to, %d bytes unused, %d wasted", st.Prefetched, st.PrefetchHits, unused, st.PrefetchWasted)
	// every expert fetch is either a routed expert or a prefetch that was not used
	if extra := st.ExpertFetches - len(routed); extra < 0 || extra > st.Prefetched-st.PrefetchHits {
		t.Errorf("%d expert fetches for %d routed experts and %d unused prefetches", st.ExpertFetches, len(routed), st.Prefetched-st.PrefetchHits)
	}
}

// slow delays every read of an expert shard, like a slow network.
type slow struct {
	shard.Source
	delay time.Duration
}

func (s slow) Read(ctx context.Context, file string, off, n int64) ([]byte, error) {
	if strings.HasPrefix(file, "shards/") {
		time.Sleep(s.delay)
	}
	return s.Source.Read(ctx, file, off, n)
}

// TestMissingFast: with experts arriving slowly, MissingFast substitutes
// ready experts instead of waiting, fetches the missing ones meanwhile, and
// uses only experts that were ready; with everything at hand it changes
// nothing.
func TestMissingFast(t *testing.T) {
	dir, m := packOf(t, "olmoe")
	ctx := context.Background()
	run := func(src shard.Source, missing engine.MissingPolicy) ([]int, engine.Stats) {
		p, err := loader.Load(ctx, m, &shard.Fetcher{Src: src})
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.New(cpu.New(cpu.Options{}), p.Model, engine.Options{Experts: p, Missing: missing})
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		if _, err := e.Generate(ctx, []int{1, 40, 41, 42}, engine.GenerateOptions{MaxTokens: 16, Stop: []int{}},
			func(id int) error { out = append(out, id); return nil }); err != nil {
			t.Fatal(err)
		}
		return out, e.Stats()
	}
	exact, es := run(shard.NewDir(dir), engine.MissingExact)
	if es.Substitutions != 0 {
		t.Fatalf("exact mode substituted %d slots", es.Substitutions)
	}
	fast, fs := run(slow{shard.NewDir(dir), 20 * time.Millisecond}, engine.MissingFast)
	if fs.Substitutions == 0 {
		t.Fatalf("fast mode with slow experts substituted nothing: %+v", fs)
	}
	t.Logf("fast mode: %d substitutions, %d experts loaded; tokens %v (exact %v)", fs.Substitutions, fs.ExpertsLoaded, fast, exact)

	// with the whole model in memory every expert is ready: no substitution
	m2 := testmodel.Random(testmodel.Family("olmoe", false), 3)
	for _, missing := range []engine.MissingPolicy{engine.MissingExact, engine.MissingFast} {
		e, err := engine.New(cpu.New(cpu.Options{}), m2, engine.Options{LazyExperts: true, Missing: missing})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Forward([]int{1, 2, 3, 4}); err != nil {
			t.Fatal(err)
		}
		if e.Stats().Substitutions != 0 {
			t.Errorf("policy %d substituted with every expert in memory", missing)
		}
	}
}
