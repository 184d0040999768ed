// Package e2e drives the browser runtime in a real headless Chromium: the
// wasm build runs in a Web Worker of the demo page, served by
// cmd/devserver, and its output is checked against the native engine.
package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto"
	"github.com/chromedp/chromedp"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestBrowser runs every browser check against one build, one server and
// one browser, which is most of the cost.
func TestBrowser(t *testing.T) {
	chromium := findChromium(t)
	models := shared.Models(t)
	rb := buildRuntime(t)
	root, tmp, wasm, server := rb.root, rb.tmp, rb.wasm, rb.server

	packs := filepath.Join(tmp, "packs")
	stories := filepath.Join(packs, "stories260K")
	packModel(t, filepath.Join(models, "stories260K", "stories260K.bin"), stories, tensor.Q8_0)
	// Many experts and a short generation, so that far from all of them
	// are routed to and lazy fetching shows.
	olmoe := filepath.Join(packs, "olmoe")
	synthPack(t, tmp, "olmoe", olmoe, func(o *synth.Options) { o.Experts = 64 }, tensor.Q4_0)

	logFile := filepath.Join(tmp, "requests.log")
	base := startServer(t, server, "--addr", "127.0.0.1:0", "--web", filepath.Join(root, "web"),
		"--wasm", wasm, "--models", packs, "--log", logFile, "--faults")
	b := openBrowser(t, chromium, base+"index.html")
	log := &requestLog{path: logFile}

	t.Run("stories260K greedy equals native", func(t *testing.T) {
		want, _, _ := native(t, stories, "Once upon a time", 40)
		got := b.run(t, "/packs/stories260K/manifest.json", "none", "Once upon a time", 40, 0)
		checkSame(t, got, want)
	})
	t.Run("chat, stop and interrupt", func(t *testing.T) {
		b.chatAndInterrupt(t, "/packs/stories260K/manifest.json")
	})
	t.Run("faults", func(t *testing.T) {
		want, _, _ := native(t, stories, "Once upon a time", 12)
		testFaults(t, b, base, log, readManifest(t, stories), want)
	})
	t.Run("olmoe greedy equals native and fetches only routed and prefetched experts", func(t *testing.T) {
		const prompt = "the cat sat on"
		const n = 8
		want, routed, predicted := native(t, olmoe, prompt, n)
		m := readManifest(t, olmoe)
		wantPaths := shardPaths(m, "/packs/olmoe/", func(s manifest.Shard) bool {
			k := [2]int{s.Layer, s.Expert}
			return s.Kind != manifest.KindExpert || routed[k] || predicted[k]
		})
		if len(routed) == 0 || len(wantPaths) == len(m.Shards) {
			t.Fatalf("the prompt routes to %d experts, all %d shards would be fetched: the check would prove nothing", len(routed), len(m.Shards))
		}
		all := shardPaths(m, "/packs/olmoe/", func(manifest.Shard) bool { return true })

		mark := log.len(t)
		got := b.run(t, "/packs/olmoe/manifest.json", "cache-storage", prompt, n, 0)
		checkSame(t, got, want)
		fetched := log.shardsSince(t, mark, all)
		if !slices.Equal(fetched, wantPaths) {
			t.Errorf("first visit fetched %d shards, want the %d of core, layers, routed and prefetched experts:\n got %v\nwant %v", len(fetched), len(wantPaths), fetched, wantPaths)
		}
		extra := 0
		for k := range predicted {
			if !routed[k] {
				extra++
			}
		}
		t.Logf("first visit: %d of %d shards fetched (%d routed experts of %d, %d prefetched never routed to); stats %+v",
			len(fetched), len(m.Shards), len(routed), countExperts(m), extra, got.Stats)

		mark = log.len(t)
		again := b.run(t, "/packs/olmoe/manifest.json", "cache-storage", prompt, n, 0)
		checkSame(t, again, want)
		if f := log.shardsSince(t, mark, all); len(f) != 0 {
			t.Errorf("second visit with cache-storage fetched %d shards, want none: %v", len(f), f)
		}
		if again.Stats.BytesFetched != 0 {
			t.Errorf("second visit: stats say %d bytes fetched over the network, want 0", again.Stats.BytesFetched)
		}

		mark = log.len(t)
		none := b.run(t, "/packs/olmoe/manifest.json", "none", prompt, n, 0)
		checkSame(t, none, want)
		if f := log.shardsSince(t, mark, all); !slices.Equal(f, wantPaths) {
			t.Errorf("visit with cache none fetched %v, want %v again", f, wantPaths)
		}

		// A budget of a few experts evicts and refetches (from Cache
		// Storage) without changing the output.
		tight := b.run(t, "/packs/olmoe/manifest.json", "cache-storage", prompt, n, 0.02)
		checkSame(t, tight, want)
		if tight.Stats.Evictions == 0 || tight.Stats.Resident >= len(routed) {
			t.Errorf("expertBudgetMB 0.02: %d evictions, %d resident of %d routed", tight.Stats.Evictions, tight.Stats.Resident, len(routed))
		}
	})
}

// findChromium returns the browser's path, skipping the test when there is
// none (failing under CI=true, which must provide it).
func findChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium found: run scripts/ensure-chromium.sh (as root on Debian) to install it"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI must provide it")
	}
	t.Skip(msg)
	return ""
}

// runtimeBuild is the browser runtime built for one test: the repository
// root, a temp dir, and in it mode.wasm and the devserver binary.
type runtimeBuild struct{ root, tmp, wasm, server string }

// buildRuntime builds mode.wasm (js/wasm) and the devserver into a temp dir.
func buildRuntime(t *testing.T) runtimeBuild {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	r := runtimeBuild{root: root, tmp: tmp, wasm: filepath.Join(tmp, "mode.wasm"), server: filepath.Join(tmp, "devserver")}
	goBuild(t, root, []string{"GOOS=js", "GOARCH=wasm"}, r.wasm, "./cmd/wasm")
	goBuild(t, root, nil, r.server, "./cmd/devserver")
	return r
}

// synthPack writes a synthetic model of arch (adjusted by edit) under tmp
// and packs it into dir in format q.
func synthPack(t *testing.T, tmp, arch, dir string, edit func(*synth.Options), q tensor.DType) {
	t.Helper()
	src := filepath.Join(tmp, filepath.Base(dir)+"-src")
	o := synth.Default(arch)
	if edit != nil {
		edit(&o)
	}
	if err := synth.Write(src, o); err != nil {
		t.Fatal(err)
	}
	packModel(t, src, dir, q)
}

func goBuild(t *testing.T, dir string, env []string, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

func packModel(t *testing.T, src, dir string, q tensor.DType) {
	t.Helper()
	packModelTemplate(t, src, dir, q, nil)
}

// packModelTemplate is packModel with the chat template tmpl instead of
// the model's own (nil keeps it).
func packModelTemplate(t *testing.T, src, dir string, q tensor.DType, tmpl *string) {
	t.Helper()
	in, err := importer.Open(src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	chat := in.ChatTemplate
	if tmpl != nil {
		chat = *tmpl
	}
	if _, err := pack.Write(dir, in.Source, in.Tokenizer, chat, pack.Options{Quant: q}); err != nil {
		t.Fatalf("packing %s: %v", src, err)
	}
}

// pinned is the URL path of the manifest in pack directory dir, served
// at path, with its sha256 pinned ("…/manifest.json#sha256=HEX").
func pinned(t *testing.T, dir, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return path + "#sha256=" + hex.EncodeToString(sum[:])
}

func readManifest(t *testing.T, dir string) *manifest.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startServer runs the devserver and returns its base URL (ending in "/").
func startServer(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("devserver did not say where it listens: %v", err)
	}
	u, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("devserver's first line is %q, want \"listening on URL\"", line)
	}
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

// predictor records the experts the engine asks to prefetch.
type predictor struct {
	*loader.Pack
	predicted map[[2]int]bool
}

// The engine prefetches only through a Prefetcher: a method that stops
// matching it would silently predict nothing.
var _ engine.Prefetcher = (*predictor)(nil)

func (p *predictor) Prefetch(ctx context.Context, layer int, experts []int) {
	for _, x := range experts {
		p.predicted[[2]int{layer, x}] = true
	}
	p.Pack.Prefetch(ctx, layer, experts)
}

// native generates greedily with the CPU engine on the pack, with prefetch
// as the browser runs it, and returns the ids, the routed (layer, expert)
// pairs and the pairs prefetched. The engine is deterministic, so the
// browser prefetches the same experts.
func native(t *testing.T, dir, prompt string, n int) ([]int, map[[2]int]bool, map[[2]int]bool) {
	t.Helper()
	return nativeOn(t, cpu.Options{}, dir, prompt, n)
}

// nativeOn is native on a CPU backend of options o. The browser's CPU
// path is the fast path in pure Go; so is this package's native engine
// when its tests run with -tags purego (make test does), and the two then
// compute the same bits: the Go compiler fuses no multiply-adds on amd64
// (GOAMD64=v1) or wasm. WebGPU computes in the exact path's order, so its
// tests compare with cpu.Options{Exact: true}.
func nativeOn(t *testing.T, o cpu.Options, dir, prompt string, n int) ([]int, map[[2]int]bool, map[[2]int]bool) {
	t.Helper()
	pk, err := loader.Open(context.Background(), dir, shard.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	routed := map[[2]int]bool{}
	trace := func(layer, _ int, routes [][]routing.Choice) {
		for _, cs := range routes {
			for _, c := range cs {
				routed[[2]int{layer, c.Expert}] = true
			}
		}
	}
	pred := &predictor{Pack: pk, predicted: map[[2]int]bool{}}
	e, err := engine.New(cpu.New(o), pk.Model, engine.Options{Experts: pred, Trace: trace, Prefetch: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := pk.Tokenizer.Encode(prompt)
	if pk.AddBOS {
		ids = append([]int{pk.Model.Config.BOS}, ids...)
	}
	var out []int
	_, err = e.Generate(context.Background(), ids, engine.GenerateOptions{MaxTokens: n}, func(id int) error {
		out = append(out, id)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, routed, pred.predicted
}

func shardPaths(m *manifest.Manifest, prefix string, keep func(manifest.Shard) bool) []string {
	var out []string
	for _, s := range m.Shards {
		if keep(s) {
			for _, p := range s.Pieces {
				out = append(out, prefix+p.File)
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func countExperts(m *manifest.Manifest) int {
	n := 0
	for _, s := range m.Shards {
		if s.Kind == manifest.KindExpert {
			n++
		}
	}
	return n
}

// requestLog reads the devserver's --log file.
type requestLog struct{ path string }

type logLine struct {
	Path   string `json:"path"`
	Range  string `json:"range"`
	Bytes  int64  `json:"bytes"`
	Status int    `json:"status"`
}

func (l *requestLog) lines(t *testing.T) []logLine {
	t.Helper()
	b, err := os.ReadFile(l.path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []logLine
	for _, s := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if s == "" {
			continue
		}
		var ln logLine
		if err := json.Unmarshal([]byte(s), &ln); err != nil {
			t.Fatalf("log line %q: %v", s, err)
		}
		out = append(out, ln)
	}
	return out
}

func (l *requestLog) len(t *testing.T) int { return len(l.lines(t)) }

// shardsSince returns the distinct shard paths requested after the first
// mark lines, sorted. Paths that are no shard (manifest, tokenizer) are
// left out; a request for something outside the pack fails the test.
func (l *requestLog) shardsSince(t *testing.T, mark int, shards []string) []string {
	t.Helper()
	var out []string
	for _, ln := range l.lines(t)[mark:] {
		if slices.Contains(shards, ln.Path) {
			out = append(out, ln.Path)
		}
		if ln.Status >= 400 {
			t.Errorf("request %s (range %q) got status %d", ln.Path, ln.Range, ln.Status)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// browser is a page of the demo in headless Chromium.
type browser struct {
	ctx context.Context
}

func openBrowser(t *testing.T, chromium, page string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("enable-unsafe-webgpu", true),
		chromedp.Flag("enable-unsafe-webgpu", false), // no adapter, so "auto" is the CPU path these tests check; webgpu_test.go opens its own
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			t.Logf("browser console: %s", m)
		}
	}()
	if err := openPage(ctx, page, "window.mode !== undefined"); err != nil {
		t.Fatalf("the demo page did not load mode.js: %v", err)
	}
	return &browser{ctx: ctx}
}

// openPage navigates ctx's tab to page and waits for the new page's js
// to be true (pollPage).
func openPage(ctx context.Context, page, js string) error {
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		return fmt.Errorf("opening %s: %w", page, err)
	}
	if err := pollPage(ctx, js); err != nil {
		return fmt.Errorf("%s: waiting for %s: %w", page, js, err)
	}
	return nil
}

// pollPage waits for the page's js to be true. chromedp evaluates the
// poll in the execution context it last saw for the frame; when a
// navigation or reload tears that context down in between, Chromium
// answers "Cannot find context with specified id" (a CI run failed so),
// and the poll is asked again in the new context. Any other error, or the
// same one five times, is returned.
func pollPage(ctx context.Context, js string, opts ...chromedp.PollOption) error {
	for try := 0; ; try++ {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](js, opts...))
		var cdpErr *cdproto.Error
		if err == nil || try == 4 || !errors.As(err, &cdpErr) ||
			!(strings.Contains(cdpErr.Message, "Cannot find context") || strings.Contains(cdpErr.Message, "context was destroyed")) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// eval runs an async JavaScript expression and decodes its value.
func eval[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	return evalFor[T](t, b, js, 90*time.Second)
}

// evalFor is eval with its own limit, for scripts that generate many
// tokens on a software adapter.
func evalFor[T any](t *testing.T, b *browser, js string, limit time.Duration) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, limit)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("in the browser: %v", err)
	}
	return v
}

// browserRun is what one visit reports.
type browserRun struct {
	IDs       []int   `json:"ids"`
	Text      string  `json:"text"`
	Streamed  string  `json:"streamed"`
	Finish    string  `json:"finish"`
	Progress  int     `json:"progress"`
	Backend   string  `json:"backend"`
	Stats     stats   `json:"stats"`
	LoadMS    float64 `json:"loadMS"`
	GenerateS float64 `json:"generateS"`
}

type stats struct {
	BytesFetched   int64   `json:"bytesFetched"`
	BytesFromCache int64   `json:"bytesFromCache"`
	ShardHitRate   float64 `json:"shardCacheHitRate"`
	Resident       int     `json:"expertsResident"`
	Evictions      int     `json:"expertEvictions"`
	Total          int     `json:"expertsTotal"`
	Prefill        float64 `json:"prefillTokensPerSecond"`
	Decode         float64 `json:"decodeTokensPerSecond"`
}

// run is one visit: create an engine, generate greedily (whole and
// streamed), read the stats and unload.
func (b *browser) run(t *testing.T, manifestURL, cache, prompt string, n int, budgetMB float64) browserRun {
	t.Helper()
	js := fmt.Sprintf(`(async () => {
		const t0 = performance.now();
		let progress = 0;
		const e = await mode.create({model: %q, cache: %q, backend: "auto", expertBudgetMB: %v, onProgress: () => progress++});
		const t1 = performance.now();
		const req = {prompt: %q, temperature: 0, max_tokens: %d};
		const r = await e.completions.create({...req, return_token_ids: true});
		const t2 = performance.now();
		let streamed = "";
		for await (const c of await e.completions.create({...req, stream: true})) streamed += c.choices[0].text;
		const stats = await e.stats();
		await e.unload();
		return {ids: r.choices[0].token_ids, text: r.choices[0].text, finish: r.choices[0].finish_reason, streamed, progress,
			backend: e.info.backend, stats, loadMS: t1 - t0, generateS: (t2 - t1) / 1000};
	})()`, manifestURL, cache, budgetMB, prompt, n)
	r := eval[browserRun](t, b, js)
	t.Logf("%s (cache %s): load %.0f ms, %d progress events, generate %.2f s, prefill %.0f tok/s, decode %.0f tok/s, network %d B, from cache %d B",
		manifestURL, cache, r.LoadMS, r.Progress, r.GenerateS, r.Stats.Prefill, r.Stats.Decode, r.Stats.BytesFetched, r.Stats.BytesFromCache)
	if r.Streamed != r.Text {
		t.Errorf("streamed text %q differs from the whole result %q", r.Streamed, r.Text)
	}
	if r.Progress == 0 {
		t.Error("no progress events while loading")
	}
	if r.Backend != "cpu" {
		t.Errorf("backend auto resolved to %q, want cpu", r.Backend)
	}
	return r
}

func checkSame(t *testing.T, got browserRun, want []int) {
	t.Helper()
	if !slices.Equal(got.IDs, want) {
		t.Errorf("browser generated %v\n          native %v", got.IDs, want)
	}
}

// chatAndInterrupt checks the chat API, stop strings, the webgpu error and
// that an interrupt ends a stream with finish_reason "abort".
func (b *browser) chatAndInterrupt(t *testing.T, manifestURL string) {
	js := fmt.Sprintf(`(async () => {
		let webgpu = "";
		try { await mode.create({model: %[1]q, backend: "webgpu", cache: "none"}); } catch (err) { webgpu = err.code + ": " + err.message; }
		const e = await mode.create({model: %[1]q, cache: "none"});
		const chat = await e.chat.completions.create({messages: [{role: "user", content: "Tell me a story."}], temperature: 0, max_tokens: 30});
		const stopped = await e.completions.create({prompt: "Once upon a time", temperature: 0, max_tokens: 60, stop: ["."]});
		let chunks = 0, last = null;
		for await (const c of await e.completions.create({prompt: "Once upon a time", temperature: 0, max_tokens: 400, stream: true})) {
			if (++chunks === 3) await e.interrupt();
			last = c;
		}
		const after = await e.completions.create({prompt: "Once", temperature: 0, max_tokens: 3});
		await e.unload();
		return {webgpu, chatObject: chat.object, chatRole: chat.choices[0].message.role, chatText: chat.choices[0].message.content,
			stoppedText: stopped.choices[0].text, stoppedFinish: stopped.choices[0].finish_reason,
			chunks, lastFinish: last.choices[0].finish_reason, afterTokens: after.usage.completion_tokens};
	})()`, manifestURL)
	r := eval[struct {
		WebGPU        string `json:"webgpu"`
		ChatObject    string `json:"chatObject"`
		ChatRole      string `json:"chatRole"`
		ChatText      string `json:"chatText"`
		StoppedText   string `json:"stoppedText"`
		StoppedFinish string `json:"stoppedFinish"`
		Chunks        int    `json:"chunks"`
		LastFinish    string `json:"lastFinish"`
		AfterTokens   int    `json:"afterTokens"`
	}](t, b, js)
	t.Logf("chat: %q; stopped at %q; interrupted after %d chunks", r.ChatText, r.StoppedText, r.Chunks)
	if !strings.HasPrefix(r.WebGPU, "unavailable: ") {
		t.Errorf("backend webgpu: got %q, want an unavailable error", r.WebGPU)
	}
	if r.ChatObject != "chat.completion" || r.ChatRole != "assistant" || r.ChatText == "" {
		t.Errorf("chat result: object %q, role %q, text %q", r.ChatObject, r.ChatRole, r.ChatText)
	}
	if r.StoppedFinish != "stop" || strings.Contains(r.StoppedText, ".") {
		t.Errorf("stop \".\": finish %q, text %q", r.StoppedFinish, r.StoppedText)
	}
	if r.LastFinish != "abort" || r.Chunks >= 400 {
		t.Errorf("interrupted stream: %d chunks, last finish_reason %q, want abort well before 400", r.Chunks, r.LastFinish)
	}
	if r.AfterTokens != 3 {
		t.Errorf("generation after an interrupt made %d tokens, want 3", r.AfterTokens)
	}
}
