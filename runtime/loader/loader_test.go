package loader_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/importer"
)

// A Pack is the engine's source of experts, prefetching and ready ones
// included: a method that stops matching would silently turn them off.
var _ interface {
	engine.ExpertSource
	engine.Prefetcher
	engine.Readier
} = (*loader.Pack)(nil)

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
	_, err = e.Forward(context.Background(), []int{1, 2, 3})
	if err == nil || !strings.Contains(err.Error(), "shard layer.0.expert.") {
		t.Fatalf("forward with missing expert shards: %v", err)
	}
}

// TestWhole: Whole, which loads the experts on several goroutines, gives
// every expert's tensors as LoadExpert gives them one by one; with two
// expert shards damaged it reports the first in (layer, expert) order,
// naming its shard, whichever goroutine reached it first, and stops
// loading after it.
func TestWhole(t *testing.T) {
	dir, m := packOf(t, "olmoe")
	p, err := loader.Open(context.Background(), dir, shard.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := p.Whole(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := p.Model.Config
	for l := range c.Layers {
		for e := range c.FFN[l].ExpertWidths {
			ts, err := p.LoadExpert(context.Background(), l, e)
			if err != nil {
				t.Fatal(err)
			}
			for i, sp := range c.ExpertSpec(l, e) {
				if got := w.Weights[sp.Name]; got == nil || !slices.Equal(got.Data, ts[i].Data) {
					t.Fatalf("%s differs from LoadExpert's", sp.Name)
				}
			}
		}
	}
	var damaged []string
	for _, s := range m.Shards {
		if s.Kind == manifest.KindExpert && (s.Layer == 0 && s.Expert == 1 || s.Layer == c.Layers-1 && s.Expert == 0) {
			if err := os.WriteFile(filepath.Join(dir, s.Pieces[0].File), []byte("not the shard"), 0o644); err != nil {
				t.Fatal(err)
			}
			damaged = append(damaged, s.ID)
		}
	}
	if len(damaged) != 2 {
		t.Fatalf("damaged %v, want two expert shards", damaged)
	}
	var experts int64
	for _, s := range m.Shards {
		if s.Kind == manifest.KindExpert {
			experts += s.Size
		}
	}
	for range 5 {
		src := &countingSource{Source: shard.NewDir(dir)}
		p, err := loader.LoadWith(context.Background(), m, &shard.Fetcher{Src: src}, loader.Options{})
		if err != nil {
			t.Fatal(err)
		}
		core := src.bytes.Load()
		_, err = p.Whole(context.Background())
		if err == nil || !strings.Contains(err.Error(), "shard layer.0.expert.1") {
			t.Fatalf("Whole with %v damaged: %v, want the error of layer.0.expert.1", damaged, err)
		}
		// It stops handing out experts after the failed one.
		if read := src.bytes.Load() - core; read > experts/2 {
			t.Fatalf("Whole with layer.0.expert.1 damaged read %d of the experts' %d bytes", read, experts)
		}
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
		if _, err := e.Forward(context.Background(), []int{1, 2, 3, 4}); err != nil {
			t.Fatal(err)
		}
		if e.Stats().Substitutions != 0 {
			t.Errorf("policy %d substituted with every expert in memory", missing)
		}
	}
}

// TestOpenPinned: a location may pin the manifest's sha256; a pack whose
// manifest differs from the pin is refused before anything else is read.
func TestOpenPinned(t *testing.T) {
	dir, _ := packOf(t, "mixtral")
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	pin := "#sha256=" + hex.EncodeToString(sum[:])
	ctx := context.Background()
	for _, loc := range []string{srv.URL + "/manifest.json" + pin, srv.URL + "/" + pin, dir + pin} {
		if _, err := loader.Open(ctx, loc, shard.HTTPOptions{}); err != nil {
			t.Errorf("%s: %v", loc, err)
		}
	}
	wrong := "#sha256=" + strings.Repeat("ab", 32)
	for _, loc := range []string{srv.URL + "/manifest.json" + wrong, dir + wrong} {
		_, err := loader.Open(ctx, loc, shard.HTTPOptions{})
		if err == nil || !strings.Contains(err.Error(), "but the location pins "+strings.Repeat("ab", 32)) {
			t.Errorf("%s: error %v, want the pin mismatch", loc, err)
		}
	}
}

// stallServer serves dir over real HTTP, except that the body of every
// routed expert's shard from layer `from` on stops after its first bytes
// and never ends (until the test does): a server that hangs mid-download.
func stallServer(t *testing.T, dir string, m *manifest.Manifest, from int) *httptest.Server {
	t.Helper()
	stalled := map[string]bool{}
	for _, s := range m.Shards {
		if s.Kind == manifest.KindExpert && s.Layer >= from {
			stalled["/"+s.Pieces[0].File] = true
		}
	}
	release := make(chan struct{})
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !stalled[r.URL.Path] {
			files.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(http.StatusOK)
		w.Write(make([]byte, 16))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

// active counts the Reads of a Source that have not returned.
type active struct {
	shard.Source
	n    atomic.Int64
	idle func() // closes the HTTP client's idle connections
}

func (a *active) Read(ctx context.Context, file string, off, n int64) ([]byte, error) {
	a.n.Add(1)
	defer a.n.Add(-1)
	return a.Source.Read(ctx, file, off, n)
}

// openStalled loads a pack whose expert downloads from layer `from` on
// hang, over real HTTP, through a Source that counts the reads in progress
// (and a transport of its own, whose idle connections a test may close).
func openStalled(t *testing.T, from int) (*loader.Pack, *active) {
	t.Helper()
	dir, m := packOf(t, "olmoe")
	srv := stallServer(t, dir, m, from)
	ctx := context.Background()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	src, raw, err := shard.ReadManifest(ctx, srv.URL+"/manifest.json", shard.HTTPOptions{Client: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	mf, err := manifest.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	a := &active{Source: src, idle: tr.CloseIdleConnections}
	p, err := loader.Load(ctx, mf, &shard.Fetcher{Src: a})
	if err != nil {
		t.Fatal(err)
	}
	return p, a
}

// TestCancelStalledExpert: a stalled expert download ends when the
// caller's context does — from LoadExpert, from a prefetch it waits for,
// and through the engine's Generate (an interrupt) — promptly and with an
// error wrapping context.Canceled.
func TestCancelStalledExpert(t *testing.T) {
	const prompt = 3 * time.Second // far beyond the 100 ms before cancelling
	t.Run("LoadExpert", func(t *testing.T) {
		p, a := openStalled(t, 0)
		defer p.Close()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		t0 := time.Now()
		_, err := p.LoadExpert(ctx, 0, 1)
		if took := time.Since(t0); !errors.Is(err, context.Canceled) || took > prompt {
			t.Fatalf("LoadExpert of a stalled expert returned %v after %v, want context.Canceled within %v", err, took, prompt)
		}
		if n := a.n.Load(); n != 0 {
			t.Errorf("%d reads still running after LoadExpert returned", n)
		}
	})
	t.Run("prefetched", func(t *testing.T) {
		p, _ := openStalled(t, 0)
		defer p.Close()
		p.Prefetch(context.Background(), 0, []int{1})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		t0 := time.Now()
		_, err := p.LoadExpert(ctx, 0, 1)
		if took := time.Since(t0); !errors.Is(err, context.Canceled) || took > prompt {
			t.Fatalf("LoadExpert waiting for a stalled prefetch returned %v after %v, want context.Canceled within %v", err, took, prompt)
		}
	})
	t.Run("Generate", func(t *testing.T) {
		// Layer 0's experts arrive, so the engine predicts (and prefetches)
		// layer 1's before it stalls on them.
		p, a := openStalled(t, 1)
		defer p.Close()
		e, err := engine.New(cpu.New(cpu.Options{}), p.Model, engine.Options{Experts: p, Prefetch: true})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		t0 := time.Now()
		res, err := e.Generate(ctx, []int{1, 40, 41}, engine.GenerateOptions{MaxTokens: 4}, func(int) error { return nil })
		if took := time.Since(t0); !errors.Is(err, context.Canceled) || took > prompt {
			t.Fatalf("Generate over stalled experts returned %v after %v, want context.Canceled within %v", err, took, prompt)
		}
		if res.StopReason != "cancelled" {
			t.Errorf("stop reason %q, want cancelled", res.StopReason)
		}
		// The prefetches the engine started ran under ctx too.
		if err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := a.n.Load(); n != 0 {
			t.Errorf("%d reads still running after the generation's prefetches ended", n)
		}
		if e.Stats().Prefetches == 0 {
			t.Errorf("the engine prefetched nothing: the test did not reach a prefetch")
		}
	})
}

// TestCloseJoinsPrefetch: Close cancels stalled prefetches and returns
// only when their goroutines have, and the closed pack starts no more.
func TestCloseJoinsPrefetch(t *testing.T) {
	p, a := openStalled(t, 0)
	a.idle() // the up-front downloads' connections: not the pack's goroutines
	before := runtime.NumGoroutine()
	p.Prefetch(context.Background(), 0, []int{0, 1, 2, 3})
	p.Prefetch(context.Background(), 1, []int{4, 5})
	deadline := time.Now().Add(5 * time.Second)
	for a.n.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := a.n.Load(); n != 6 {
		t.Fatalf("%d downloads running, want the 6 prefetched", n)
	}
	if n := runtime.NumGoroutine(); n < before+6 {
		t.Fatalf("%d goroutines with 6 prefetches running, %d before", n, before)
	}
	t0 := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("Close took %v over stalled prefetches", took)
	}
	if n := a.n.Load(); n != 0 {
		t.Errorf("%d downloads still running after Close returned", n)
	}
	p.Prefetch(context.Background(), 2, []int{0, 1})
	if n := a.n.Load(); n != 0 || p.Stats().Prefetched != 6 {
		t.Errorf("a closed pack prefetched: %d running, %d prefetched in all", n, p.Stats().Prefetched)
	}
	if _, err := p.LoadExpert(context.Background(), 0, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("LoadExpert on a closed pack: %v, want context.Canceled", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The HTTP client's and the test server's connection goroutines end
	// on their own time; the pack's own are gone already (the reads
	// above), so this only waits for those.
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && runtime.NumGoroutine() > before {
		a.idle()
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before the prefetches", n, before)
	}
}

// mapKept is a ConvertedStore in memory, keyed by shard ID.
type mapKept struct {
	mu   sync.Mutex
	m    map[string][]*tensor.Tensor
	puts int
}

func (k *mapKept) Get(_ context.Context, s *manifest.Shard) ([]*tensor.Tensor, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ts, ok := k.m[s.ID]
	return ts, ok
}

func (k *mapKept) Put(_ context.Context, s *manifest.Shard, ts []*tensor.Tensor) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[s.ID] = ts
	k.puts++
}

// countingSource counts the bytes read through it.
type countingSource struct {
	shard.Source
	bytes atomic.Int64
}

func (c *countingSource) Read(ctx context.Context, file string, off, n int64) ([]byte, error) {
	b, err := c.Source.Read(ctx, file, off, n)
	c.bytes.Add(int64(len(b)))
	return b, err
}

// TestConvertedStore: with a ConvertedStore, a second load of the same
// pack reads no byte and converts no tensor, and builds the same model; a
// stored entry that does not match its shard is fetched and converted
// again.
func TestConvertedStore(t *testing.T) {
	dir, m := packOf(t, "mixtral")
	toQ4 := func(tt *tensor.Tensor) (*tensor.Tensor, error) {
		if len(tt.Shape) != 2 || !tensor.CanQuantize(tensor.Q4_0, tt.Cols()) || tt.Shape[0] == 1 {
			return tt, nil
		}
		f, err := tt.Float32s()
		if err != nil {
			return nil, err
		}
		return tensor.Quantize(tensor.FromF32(tt.Name, tt.Shape, f), tensor.Q4_0)
	}
	kept := &mapKept{m: map[string][]*tensor.Tensor{}}
	visit := func() (*loader.Pack, map[string]*tensor.Tensor, int64) {
		t.Helper()
		src := &countingSource{Source: shard.NewDir(dir)}
		p, err := loader.LoadWith(context.Background(), m, &shard.Fetcher{Src: src}, loader.Options{Convert: toQ4, Converted: kept})
		if err != nil {
			t.Fatal(err)
		}
		w, err := p.Whole(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return p, w.Weights, src.bytes.Load()
	}
	p1, w1, read1 := visit()
	st1 := p1.Stats()
	if read1 == 0 || st1.Conversions == 0 || st1.ConvertedHits != 0 || kept.puts != len(m.Shards) {
		t.Fatalf("first load: %d bytes read, %+v, %d shards kept of %d", read1, st1, kept.puts, len(m.Shards))
	}
	p2, w2, read2 := visit()
	if st := p2.Stats(); read2 != 0 || st.Conversions != 0 || st.ConvertedHits != len(m.Shards) {
		t.Errorf("second load: %d bytes read, %+v; want none read or converted, %d shards kept", read2, st, len(m.Shards))
	}
	for name, a := range w1 {
		if b := w2[name]; b == nil || a.DType != b.DType || !slices.Equal(a.Data, b.Data) {
			t.Errorf("%s differs on the second load", name)
		}
	}
	if w1["layers.0.wq"].DType != tensor.Q4_0 {
		t.Errorf("layers.0.wq is %v: the conversion did not apply", w1["layers.0.wq"].DType)
	}
	// a damaged entry: the wrong shape
	id := m.Shards[0].ID
	bad := slices.Clone(kept.m[id])
	bad[0] = &tensor.Tensor{Name: bad[0].Name, DType: tensor.F32, Shape: []int{1}, Data: make([]byte, 4)}
	kept.m[id] = bad
	p3, _, read3 := visit()
	if st := p3.Stats(); read3 == 0 || st.ConvertedHits != len(m.Shards)-1 {
		t.Errorf("a damaged entry: %d bytes read, %+v; want its shard fetched again", read3, st)
	}
}
