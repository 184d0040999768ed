package e2e

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moderuntime/mode/modelpack/hfrepo"
	"github.com/moderuntime/mode/modelpack/load"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestHFNative: `mode run -m hf:test/olmoe-tiny --hf-endpoint` against
// `devserver --hf` on a synthesized two-file bf16 OLMoE checkpoint
// generates the ids `mode run` does on the same directory loaded locally
// at the same quantisation (q4_0 experts, q8_0 the rest); the server saw
// only the small JSON files, two header reads per safetensors file, the
// always-used tensors' ranges and the ranges of exactly the experts the
// engine routed to (from its routing trace), each once; a revision that
// moved is refused, as are a missing repository and one with only .bin
// weights, each in one line naming the repository and file; connections
// cut mid-range are resumed. For every family synth writes (gpt-oss with
// bf16 and with MXFP4 experts), `mode run -m hf:` generates the ids
// `mode run` does on the same directory, which are those the in-process
// engine traceLocal runs generates (TestBrowserHF's reference).
func TestHFNative(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	modeBin, server := filepath.Join(tmp, "mode"), filepath.Join(tmp, "devserver")
	for out, pkg := range map[string]string{modeBin: "./cmd/mode", server: "./cmd/devserver"} {
		cmd := exec.Command("go", "build", "-tags", buildTags, "-o", out, pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	hub := filepath.Join(tmp, "hub")
	dir := filepath.Join(hub, "test", "olmoe-tiny")
	o := synth.Default("olmoe")
	o.DType, o.Files, o.FFN, o.Experts, o.TopK, o.Layers = tensor.BF16, 2, 64, 16, 2, 3
	if err := synth.Write(dir, o); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(hub, "test", "binonly")
	os.MkdirAll(bin, 0o755)
	for _, f := range []string{"config.json", "tokenizer.json"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		os.WriteFile(filepath.Join(bin, f), b, 0o644)
	}
	os.WriteFile(filepath.Join(bin, "pytorch_model.bin"), bytes.Repeat([]byte{1}, 4096), 0o644)
	families := hfFamilies()
	for _, f := range families {
		if err := synth.Write(filepath.Join(hub, "test", f.repo), f.options()); err != nil {
			t.Fatal(err)
		}
	}
	logFile := filepath.Join(tmp, "requests.log")
	base := startServer(t, server, "--addr", "127.0.0.1:0", "--web", filepath.Join(tmp, "noweb"), "--hf", hub, "--log", logFile, "--faults")
	endpoint := base + "hf"
	const prompt, n = "the cat sat on the mat", 8

	run := func(args ...string) (ids []int, stderr string, err error) {
		cmd := exec.Command(modeBin, append([]string{"run", "-p", prompt, "-n", strconv.Itoa(n), "--ids", "--prefetch=false"}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err = cmd.Run()
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		for _, f := range strings.Fields(lines[len(lines)-1]) {
			if id, e := strconv.Atoi(f); e == nil {
				ids = append(ids, id)
			}
		}
		return ids, errb.String(), err
	}
	got, stats, err := run("-m", "hf:test/olmoe-tiny", "--hf-endpoint", endpoint)
	if err != nil {
		t.Fatalf("mode run hf: %v\n%s", err, stats)
	}
	want, _, err := run("-m", dir, "--quant", "q4_0")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || !slices.Equal(got, want) {
		t.Fatalf("hf: generated %v, the local directory at q4_0 %v", got, want)
	}
	t.Logf("ids %v; %s", got, strings.TrimSpace(stats))

	// The same model in process, for the routing trace.
	routed, ids := traceLocal(t, dir, prompt, n)
	if !slices.Equal(ids, got) {
		t.Fatalf("in process %v, mode run %v", ids, got)
	}
	expected := expectedRequests(t, dir, routed)
	var cdn, small []string
	resolves := 0
	for _, ln := range (&requestLog{path: logFile}).lines(t) {
		file := filepath.Base(ln.Path)
		switch {
		case strings.HasPrefix(ln.Path, "/hf-cdn/") && ln.Status == 206:
			cdn = append(cdn, file+" "+ln.Range)
		case strings.HasPrefix(ln.Path, "/hf/test/olmoe-tiny/resolve/") && ln.Status == 302 && strings.HasSuffix(file, ".safetensors"):
			resolves++
		case strings.HasPrefix(ln.Path, "/hf/test/olmoe-tiny/resolve/") && ln.Status == 200 && ln.Range == "":
			small = append(small, file)
		case strings.HasPrefix(ln.Path, "/hf/test/olmoe-tiny/resolve/") && ln.Status == 404 && file == "chat_template.jinja":
			// asked for; this repository has its template in tokenizer_config.json
		default:
			t.Errorf("unexpected request %+v", ln)
		}
	}
	slices.Sort(cdn)
	slices.Sort(small)
	if !slices.Equal(small, []string{"config.json", "generation_config.json", manifestIndex, "tokenizer.json", "tokenizer_config.json"}) {
		t.Errorf("small files fetched: %v", small)
	}
	if !slices.Equal(cdn, expected) {
		t.Errorf("ranges fetched:\n%s\nwant (headers, always-used tensors, the %d routed experts):\n%s", strings.Join(cdn, "\n"), len(routed), strings.Join(expected, "\n"))
	}
	if resolves != len(cdn) {
		t.Errorf("%d resolve redirects for %d ranges", resolves, len(cdn))
	}
	if len(routed) >= o.Layers*o.Experts {
		t.Errorf("every expert was routed to (%d); the test shows nothing about lazy fetching", len(routed))
	}
	t.Logf("%d requests for ranges: 4 header reads, %d of %d experts", len(cdn), len(routed), o.Layers*o.Experts)

	// every answer from the first file cut after 20000 bytes: the ranges
	// longer than that are resumed where they were cut
	inject(t, base, `{"path": "model-00001-of-00002.safetensors", "cut_after": 20000}`)
	mark := (&requestLog{path: logFile}).len(t)
	if ids, e, err := run("-m", "hf:test/olmoe-tiny", "--hf-endpoint", endpoint); err != nil || !slices.Equal(ids, got) {
		t.Fatalf("with cut connections: %v %v\n%s", ids, err, e)
	}
	cuts := 0
	for _, ln := range (&requestLog{path: logFile}).lines(t)[mark:] {
		if ln.Status == 206 && ln.Bytes == 20000 {
			cuts++
		}
	}
	if cuts == 0 {
		t.Error("no answer was cut: the fault did not apply")
	}
	t.Logf("%d answers cut at 20000 bytes, resumed", cuts)
	inject(t, base, "")

	for _, f := range families {
		t.Run(f.repo, func(t *testing.T) {
			local := filepath.Join(hub, "test", f.repo)
			got, e, err := run("-m", "hf:test/"+f.repo, "--hf-endpoint", endpoint)
			if err != nil {
				t.Fatalf("mode run hf: %v\n%s", err, e)
			}
			want, e, err := run("-m", local, "--quant", "q4_0")
			if err != nil {
				t.Fatalf("mode run %s: %v\n%s", local, err, e)
			}
			_, in := traceLocal(t, local, prompt, n)
			if len(got) == 0 || !slices.Equal(got, want) || !slices.Equal(want, in) {
				t.Errorf("hf: generated %v, the local directory at q4_0 %v, in process %v", got, want, in)
			}
			t.Logf("ids %v", got)
		})
	}

	// a pinned commit loads; once the repository changes, it is gone
	commit := commitOf(t, logFile)
	if ids, e, err := run("-m", "hf:test/olmoe-tiny@"+commit, "--hf-endpoint", endpoint); err != nil || !slices.Equal(ids, got) {
		t.Fatalf("@%s: %v %v\n%s", commit, ids, err, e)
	}
	os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id": 1}`), 0o644)
	for _, tt := range []struct{ model, want string }{
		{"hf:test/olmoe-tiny@" + commit, "RevisionNotFound"},
		{"hf:test/nothere", "config.json"},
		{"hf:test/binonly", "pytorch_model.bin"},
	} {
		_, e, err := run("-m", tt.model, "--hf-endpoint", endpoint)
		e = strings.TrimSpace(e)
		if err == nil || !strings.Contains(e, strings.SplitN(tt.model, "@", 2)[0]) || !strings.Contains(e, tt.want) || strings.Count(e, "\n") > 0 {
			t.Errorf("%s: %v, stderr %q; want one line naming the repository and %q", tt.model, err, e, tt.want)
		}
	}
}

const manifestIndex = "model.safetensors.index.json"

// hfFamily is a synthesized repository of one family: two bf16
// safetensors files and the index, as real sharded checkpoints are.
type hfFamily struct {
	repo, arch string
	mxfp4      bool // gpt_oss's experts as OpenAI releases them
}

func (f hfFamily) options() synth.Options {
	o := synth.Default(f.arch)
	o.DType, o.Files, o.MXFP4 = tensor.BF16, 2, f.mxfp4
	return o
}

// hfFamilies is every family synth writes, gpt_oss in both expert layouts.
func hfFamilies() []hfFamily {
	var out []hfFamily
	for _, a := range synth.Arches() {
		if a == "gpt_oss" {
			out = append(out, hfFamily{"gpt-oss-bf16", a, false}, hfFamily{"gpt-oss-mxfp4", a, true})
			continue
		}
		out = append(out, hfFamily{strings.ReplaceAll(a, "_", "-"), a, false})
	}
	return out
}

// traceLocal runs the directory at q4_0 in process and returns the routed
// (layer, expert) pairs and the ids.
func traceLocal(t *testing.T, dir, prompt string, n int) (map[[2]int]bool, []int) {
	t.Helper()
	return traceLocalOn(t, cpu.Options{}, dir, prompt, n)
}

// traceLocalOn is traceLocal on a CPU backend with options o.
func traceLocalOn(t *testing.T, o cpu.Options, dir, prompt string, n int) (map[[2]int]bool, []int) {
	t.Helper()
	ld, err := load.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := hfrepo.DefaultQuant.Converter(ld.Model.Config)
	for name, w := range ld.Model.Weights {
		if ld.Model.Weights[name], err = conv(w); err != nil {
			t.Fatal(err)
		}
	}
	routed := map[[2]int]bool{}
	trace := func(layer, _ int, routes [][]routing.Choice) {
		for _, cs := range routes {
			for _, c := range cs {
				routed[[2]int{layer, c.Expert}] = true
			}
		}
	}
	e, err := engine.New(cpu.New(o), ld.Model, engine.Options{Trace: trace, ShareWeights: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := ld.Tokenizer.Encode(prompt)
	if ld.AddBOS {
		ids = append([]int{ld.Model.Config.BOS}, ids...)
	}
	var out []int
	if _, err := e.Generate(context.Background(), ids, engine.GenerateOptions{MaxTokens: n}, func(id int) error { out = append(out, id); return nil }); err != nil {
		t.Fatal(err)
	}
	return routed, out
}

// expectedRequests lists "FILE bytes=A-B" for what an hf: load of dir
// routed to these experts must fetch: each safetensors file's 8-byte
// length and header, each shard modelpack index makes for the always-used
// tensors, and each routed expert's, with its pieces merged where they
// follow one another in a file.
func expectedRequests(t *testing.T, dir string, routed map[[2]int]bool) []string {
	t.Helper()
	m, err := pack.Index(context.Background(), shard.NewDir(dir), pack.IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return expectedFrom(t, dir, m, routed)
}

// expectedFrom is expectedRequests from the manifest m whose pieces point
// into dir's files (by name, or by URLs ending in their names).
func expectedFrom(t *testing.T, dir string, m *manifest.Manifest, routed map[[2]int]bool) []string {
	t.Helper()
	var out []string
	files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n := binary.LittleEndian.Uint64(b)
		out = append(out, filepath.Base(f)+" bytes=0-7", fmt.Sprintf("%s bytes=8-%d", filepath.Base(f), 8+n-1))
	}
	for _, s := range m.Shards {
		if s.Kind == manifest.KindExpert && !routed[[2]int{s.Layer, s.Expert}] {
			continue
		}
		ps := slices.Clone(s.Pieces)
		slices.SortFunc(ps, func(a, b manifest.Piece) int {
			return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Offset, b.Offset))
		})
		var runs []manifest.Piece
		for _, p := range ps {
			if k := len(runs); k > 0 && runs[k-1].File == p.File && runs[k-1].Offset+runs[k-1].Length == p.Offset {
				runs[k-1].Length += p.Length
				continue
			}
			runs = append(runs, p)
		}
		for _, r := range runs {
			out = append(out, fmt.Sprintf("%s bytes=%d-%d", path.Base(r.File), r.Offset, r.Offset+r.Length-1))
		}
	}
	slices.Sort(out)
	return out
}

// repoCommit is the commit the requests for repo after the first mark
// log lines name.
func repoCommit(t *testing.T, log *requestLog, mark int, repo string) string {
	t.Helper()
	prefix := "/hf/test/" + repo + "/resolve/"
	for _, ln := range log.lines(t)[mark:] {
		if rest, ok := strings.CutPrefix(ln.Path, prefix); ok {
			if c, _, _ := strings.Cut(rest, "/"); len(c) == 40 {
				return c
			}
		}
	}
	t.Fatalf("no request for %s named a commit", repo)
	return ""
}

// commitOf is the commit the first request resolved main to.
func commitOf(t *testing.T, logFile string) string {
	t.Helper()
	for _, ln := range (&requestLog{path: logFile}).lines(t) {
		parts := strings.Split(ln.Path, "/")
		if len(parts) > 6 && parts[4] == "resolve" && len(parts[5]) == 40 {
			return parts[5]
		}
	}
	t.Fatal("no request named the commit")
	return ""
}

// TestBrowserHF: in Chromium, mode.create({model: "hf:test/olmoe-tiny",
// hfEndpoint}) indexes the repository devserver --hf serves, converts it
// to q4_0 in the worker and generates the ids the native engine does on
// the same directory at the same quantisation, fetching only the small
// JSON files, the header ranges, the always-used tensors and the routed
// experts (from the native routing trace); a reload takes the index and
// the weights from Cache Storage: of main, with one request (config.json,
// whose X-Repo-Commit names the commit whose index is kept), of
// hf:ORG/REPO@COMMIT with none at all; a new commit fetches them again. The same holds for
// gpt-oss in both expert layouts (bf16 input-major with gate and up
// interleaved, and MXFP4), whose experts are rearranged in the worker.
// For olmoe-tiny, a range answered once cut short, or once from another
// version of the file (altered bytes under another ETag than its header
// came with), is fetched again and the ids do not change; a range that
// stays altered fails the request with an error naming the file and the
// tensors.
func TestBrowserHF(t *testing.T) {
	chromium := findChromium(t)
	rb := buildRuntime(t)
	hub := filepath.Join(rb.tmp, "hub")
	repos := []hfFamily{{"olmoe-tiny", "olmoe", false}, {"gpt-oss-bf16", "gpt_oss", false}, {"gpt-oss-mxfp4", "gpt_oss", true}}
	for _, r := range repos {
		o := r.options()
		// more experts than the 8 tokens route to, so that lazy fetching shows
		o.FFN, o.Experts, o.TopK, o.Layers = 64, 16, 2, 3
		if err := synth.Write(filepath.Join(hub, "test", r.repo), o); err != nil {
			t.Fatal(err)
		}
	}
	logFile := filepath.Join(rb.tmp, "requests.log")
	base := startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(rb.root, "web"),
		"--wasm", rb.wasm, "--hf", hub, "--log", logFile, "--faults")
	br := openBrowser(t, chromium, base+"index.html")
	const prompt, n = "the cat sat on the mat", 8
	type result = hfResult
	visitCache := func(model, cache string) result {
		return eval[result](t, br, fmt.Sprintf(`(async () => {
			try {
				const e = await mode.create({model: %q, hfEndpoint: "/hf", cache: %q, backend: "auto", prefetch: false});
				const r = await e.completions.create({prompt: %q, temperature: 0, max_tokens: %d, return_token_ids: true});
				const s = await e.stats();
				await e.unload();
				return {ids: r.choices[0].token_ids, conversions: s.conversions, convertedFromCache: s.convertedFromCache,
					cachedExperts: (s.expertMap?.cached ?? []).flat().length};
			} catch (err) {
				return {error: String(err.message ?? err)};
			}
		})()`, model, cache, prompt, n))
	}
	visit := func(model string) result { return visitCache(model, "cache-storage") }
	log := &requestLog{path: logFile}
	// since lists the ranges fetched from the CDN and the files read
	// whole through the resolve URL of repo after the first mark log
	// lines, and complains of any other request for repo's files.
	since := func(t *testing.T, mark int, repo string) (cdn, small []string) {
		resolve := "/hf/test/" + repo + "/resolve/"
		redirects := 0
		for _, ln := range log.lines(t)[mark:] {
			file := filepath.Base(ln.Path)
			switch {
			case strings.HasPrefix(ln.Path, "/hf-cdn/") && ln.Status == 206:
				cdn = append(cdn, file+" "+ln.Range)
			case strings.HasPrefix(ln.Path, resolve) && ln.Status == 302 && strings.HasSuffix(file, ".safetensors"):
				redirects++
			case strings.HasPrefix(ln.Path, resolve) && ln.Status == 200 && ln.Range == "":
				small = append(small, file)
			case strings.HasPrefix(ln.Path, resolve) && ln.Status == 404 && file == "chat_template.jinja":
				// asked for; these repositories have their template in tokenizer_config.json
			case strings.HasPrefix(ln.Path, "/hf"):
				t.Errorf("unexpected request %+v", ln)
			}
		}
		if redirects != len(cdn) {
			t.Errorf("%d resolve redirects for %d ranges", redirects, len(cdn))
		}
		slices.Sort(cdn)
		slices.Sort(small)
		return cdn, small
	}
	smallFiles := []string{"config.json", "generation_config.json", manifestIndex, "tokenizer.json", "tokenizer_config.json"}
	var faultWant []int
	var faultExpected, faultHeaders []string
	for _, r := range repos {
		t.Run(r.repo, func(t *testing.T) {
			dir := filepath.Join(hub, "test", r.repo)
			model := "hf:test/" + r.repo
			routed, want := traceLocal(t, dir, prompt, n)
			if len(routed) >= 3*16 {
				t.Fatalf("every expert was routed to (%d); the test shows nothing about lazy fetching", len(routed))
			}
			var expected []string
			if r.arch == "gpt_oss" {
				// modelpack index refuses gpt-oss (its fused experts are
				// rearranged on arrival): the ranges are those of the
				// manifest hfrepo.Index builds, whose tensors
				// hfrepo.TestOpenGptOss checks against the whole-file reader.
				repo, err := hfrepo.Index(context.Background(), hfrepo.Location{Repo: "test/" + r.repo, Revision: "main"}, hfrepo.Options{Endpoint: base + "hf"})
				if err != nil {
					t.Fatal(err)
				}
				expected = expectedFrom(t, dir, repo.Manifest, routed)
			} else {
				expected = expectedRequests(t, dir, routed)
			}
			var headers []string
			for _, e := range expected {
				if strings.Contains(e, " bytes=0-7") || strings.Contains(e, " bytes=8-") { // no weight starts at byte 8: the header is there
					headers = append(headers, e)
				}
			}
			commit := "" // what main resolved to on the first visit
			for _, v := range []struct {
				name   string
				edit   func()
				at     bool // the location names the commit: hf:ORG/REPO@COMMIT
				want   []string
				small  []string // files read whole
				reload bool     // the index, converted shards and experts come from storage
			}{
				{"first visit", nil, false, expected, smallFiles, false},
				// main is resolved (config.json's X-Repo-Commit) to the
				// commit whose index is kept: no header is read again
				{"reload", nil, false, nil, []string{"config.json"}, true},
				// a location naming the commit needs no request at all
				{"reload at the commit", nil, true, nil, nil, true},
				{"new revision", func() {
					p := filepath.Join(dir, "generation_config.json")
					b, _ := os.ReadFile(p)
					os.WriteFile(p, bytes.Replace(b, []byte("{"), []byte(`{"comment": "revision 2", `), 1), 0o644)
				}, false, expected, smallFiles, false},
			} {
				if v.edit != nil {
					v.edit()
				}
				mark := log.len(t)
				m := model
				if v.at {
					m += "@" + commit
				}
				got := visit(m)
				if got.Error != "" || !slices.Equal(got.IDs, want) {
					t.Fatalf("%s: browser %v %s, native %v", v.name, got.IDs, got.Error, want)
				}
				if commit == "" {
					commit = repoCommit(t, log, mark, r.repo)
				}
				cdn, small := since(t, mark, r.repo)
				if !slices.Equal(cdn, v.want) {
					t.Errorf("%s: ranges fetched:\n%s\nwant:\n%s", v.name, strings.Join(cdn, "\n"), strings.Join(v.want, "\n"))
				}
				if !slices.Equal(small, v.small) {
					t.Errorf("%s: files read whole: %v, want %v", v.name, small, v.small)
				}
				// A reload converts nothing: every shard comes converted from
				// storage, and the Experts panel shows the routed ones cached.
				if v.reload && (got.Conversions != 0 || got.ConvertedFromCache == 0 || got.CachedExperts != len(routed)) ||
					!v.reload && (got.Conversions == 0 || got.ConvertedFromCache != 0) {
					t.Errorf("%s: %d tensors converted, %d shards converted from storage, %d experts shown cached (%d routed)",
						v.name, got.Conversions, got.ConvertedFromCache, got.CachedExperts, len(routed))
				}
			}
			if r.repo == "olmoe-tiny" {
				faultWant, faultExpected, faultHeaders = want, expected, headers
			}
			t.Logf("browser ids %v from %d ranged requests (%d experts routed); none on reload", want, len(expected), len(routed))
		})
	}
	if r := visit("hf:test/nothere"); r.Error == "" || !strings.Contains(r.Error, "hf:test/nothere") || !strings.Contains(r.Error, "config.json") {
		t.Errorf("a missing repository: %+v", r)
	}
	if faultWant == nil {
		t.Fatal("olmoe-tiny failed: no range faults checked")
	}
	checkRangeFaults(t, base, filepath.Join(hub, "test", "olmoe-tiny"), log, func() result { return visitCache("hf:test/olmoe-tiny", "none") }, faultHeaders, faultExpected, faultWant)
}

// checkRangeFaults injects faults on one weight range (not a header read)
// and loads with no storage, so the range is fetched: answered once cut
// short or once altered under another ETag, the range is fetched again and
// the ids are want's; altered on every answer, the error names the file,
// the tensors and what is wrong.
func checkRangeFaults(t *testing.T, base, dir string, log *requestLog, visit func() hfResult, headers, expected []string, want []int) {
	t.Helper()
	var file, rg string
	for _, e := range expected {
		if !slices.Contains(headers, e) {
			file, rg, _ = strings.Cut(e, " ")
		}
	}
	var from, to int64
	fmt.Sscanf(rg, "bytes=%d-%d", &from, &to)
	// The faults go to the CDN's answers (/hf-cdn/SHA256/FILE), not to
	// the resolve URL's redirect, which carries the same Range.
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	cdn := fmt.Sprintf("/hf-cdn/%x/%s", sha256.Sum256(b), file)
	fetches := func(mark int, rg string) int {
		n := 0
		for _, ln := range log.lines(t)[mark:] {
			if ln.Path == cdn && ln.Range == rg {
				n++
			}
		}
		return n
	}
	defer inject(t, base, "")
	for _, c := range []struct {
		name, fault string
		resume      string // a Range that also counts as the refetch
	}{
		{"altered once", fmt.Sprintf(`{"path": %q, "range": %q, "etag": "\"altered\"", "corrupt": true, "times": 1}`, cdn, rg), ""},
		// The client resumes after the bytes it read, or asks for the whole
		// range again when the browser's fetch reported the error before
		// handing over the 64 bytes sent (either happens in Chromium).
		{"cut once", fmt.Sprintf(`{"path": %q, "range": %q, "cut_after": 64, "times": 1}`, cdn, rg), fmt.Sprintf("bytes=%d-%d", from+64, to)},
	} {
		inject(t, base, c.fault)
		mark := log.len(t)
		got := visit()
		if got.Error != "" || !slices.Equal(got.IDs, want) {
			t.Errorf("%s: %v %s, want %v", c.name, got.IDs, got.Error, want)
		}
		// The bad answer is one fetch of rg; a refetch is another, or a
		// resumed range.
		n := fetches(mark, rg) - 1
		if c.resume != "" {
			n += fetches(mark, c.resume)
		}
		if n < 1 {
			var seen []string
			for _, ln := range log.lines(t)[mark:] {
				if ln.Path == cdn {
					seen = append(seen, fmt.Sprintf("%s %d %d", ln.Range, ln.Status, ln.Bytes))
				}
			}
			t.Errorf("%s: %s %s not fetched again after the bad answer; requests for the file:\n%s", c.name, file, rg, strings.Join(seen, "\n"))
		}
	}
	inject(t, base, fmt.Sprintf(`{"path": %q, "range": %q, "etag": "\"altered\"", "corrupt": true}`, cdn, rg))
	mark := log.len(t)
	got := visit()
	for _, s := range []string{file, "changed on the server", "tensor layers."} {
		if !strings.Contains(got.Error, s) {
			t.Errorf("a range altered on every answer: error %q does not say %q", got.Error, s)
		}
	}
	if n := fetches(mark, rg); n < 2 {
		t.Errorf("a range altered on every answer was fetched %d times, want it fetched again", n)
	}
	t.Logf("a range altered on every answer: %s", got.Error)
}

// TestChatUIHF: the chat page's model field takes hf:ORG/REPO and its hub
// field the endpoint; the repository loads and answers.
func TestChatUIHF(t *testing.T) {
	chromium := findChromium(t)
	rb := buildRuntime(t)
	web := filepath.Join(rb.tmp, "web")
	copyTree(t, filepath.Join(rb.root, "web"), web)
	goBuild(t, rb.root, []string{"GOOS=js", "GOARCH=wasm"}, filepath.Join(web, "ui", "ui.wasm"), "./cmd/ui")
	hub := filepath.Join(rb.tmp, "hub")
	o := synth.Default("olmoe")
	o.DType, o.Files, o.FFN = tensor.BF16, 2, 64
	if err := synth.Write(filepath.Join(hub, "test", "olmoe-tiny"), o); err != nil {
		t.Fatal(err)
	}
	base := startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", web, "--wasm", rb.wasm, "--hf", hub)
	b := openBrowser(t, chromium, base+"ui/")
	waitFor(t, b, "the chat to render", `document.querySelector("#model-url") !== null`, 30*time.Second)
	do(t, b, "open the settings", chromedp.Click("#settings summary"))
	waitFor(t, b, "the settings to open", `document.querySelector("#settings").open`, 5*time.Second)
	eval[bool](t, b, `(() => {
		for (const [id, v] of [["model-url", "hf:test/olmoe-tiny"], ["hf-endpoint", "/hf"]]) {
			const e = document.getElementById(id);
			e.value = v;
			e.dispatchEvent(new Event("change", {bubbles: true}));
		}
		return true;
	})()`)
	setNumber(t, b, "temperature", 0)
	setNumber(t, b, "max-tokens", 8)
	do(t, b, "load", chromedp.Click("#load"))
	waitFor(t, b, "the model to load", `document.querySelector("#status").textContent === "Model loaded."`, 90*time.Second)
	do(t, b, "type a prompt", chromedp.SendKeys("#prompt", "the cat sat on"))
	pressEnter(t, b)
	waitFor(t, b, "the reply", idle+` && document.querySelectorAll("#log li.assistant").length === 1`, 60*time.Second)
	reply := eval[string](t, b, `document.querySelector("#log li.assistant").textContent`)
	if strings.TrimSpace(reply) == "" {
		t.Error("empty reply")
	}
	// The Experts panel draws the hf: model like a pack: its grid, the
	// experts the reply fetched, and after a reload (nothing in memory)
	// those kept converted on disk.
	if cells := eval[int](t, b, `document.querySelectorAll("#expert-grid .cell").length`); cells != o.Layers*o.Experts {
		t.Errorf("the expert map has %d cells, want %d layers × %d experts", cells, o.Layers, o.Experts)
	}
	waitFor(t, b, "the map to show the fetched experts", `document.querySelectorAll("#expert-grid .cell:not(.none)").length > 0`, 10*time.Second)
	// Another expert budget is another engine: the model loads again,
	// with no expert in memory (the old engine's were).
	setNumber(t, b, "budget", 64)
	do(t, b, "reload", chromedp.Click("#load"))
	waitFor(t, b, "the map to show experts on disk and none in memory", `document.querySelector("#status").textContent === "Model loaded." &&
		document.querySelectorAll("#expert-grid .cell.resident").length === 0 &&
		document.querySelectorAll("#expert-grid .cell.cached").length > 0`, 90*time.Second)
	t.Logf("reply %q; %d experts shown on disk after a reload", reply, eval[int](t, b, `document.querySelectorAll("#expert-grid .cell.cached").length`))
}

type hfResult struct {
	IDs                []int  `json:"ids"`
	Error              string `json:"error"`
	Conversions        int    `json:"conversions"`
	ConvertedFromCache int    `json:"convertedFromCache"`
	CachedExperts      int    `json:"cachedExperts"`
}

// TestWebGPUHF: the hf: repository TestBrowserHF loads, on the WebGPU
// backend (SwiftShader in Chromium, as TestWebGPU), generates the ids the
// exact CPU path does natively at the same quantisation (q4_0 experts,
// q8_0 the rest): the tensors converted in the worker upload and run on
// the GPU like a pack's. Quantised on load, the model fits a GPU expert
// budget (expertBudgetMB) below the bf16 bytes of the experts the prompt
// routes to and above the q4_0 bytes of all of them: it generates the
// same ids with every routed expert resident and none evicted, while the
// same budget with the experts kept at 16 bits (quant "f16", the size
// of the checkpoint's bf16) has to evict.
func TestWebGPUHF(t *testing.T) {
	chromium := findChromium(t)
	rb := buildRuntime(t)
	hub := filepath.Join(rb.tmp, "hub")
	dir := filepath.Join(hub, "test", "olmoe-tiny")
	o := synth.Default("olmoe")
	o.DType, o.Files, o.FFN, o.Experts, o.TopK, o.Layers = tensor.BF16, 2, 64, 16, 2, 3
	if err := synth.Write(dir, o); err != nil {
		t.Fatal(err)
	}
	base := startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(rb.root, "web"), "--wasm", rb.wasm, "--hf", hub)
	gpu := openBrowserWith(t, chromium, base+"index.html", true)
	const prompt, n = "the cat sat on the mat", 16
	_, want := traceLocalOn(t, cpu.Options{Exact: true}, dir, prompt, n)
	got := eval[gpuVisit](t, gpu, fmt.Sprintf(`(async () => {
		try {
			const e = await mode.create({model: "hf:test/olmoe-tiny", hfEndpoint: "/hf", backend: "webgpu", cache: "none"});
			const r = await e.completions.create({prompt: %q, temperature: 0, max_tokens: %d, return_token_ids: true});
			const stats = await e.stats();
			await e.unload();
			return {ids: r.choices[0].token_ids, backend: e.info.backend, note: e.info.backendNote ?? "", stats};
		} catch (err) {
			return {code: err.code ?? "", error: String(err.message ?? err)};
		}
	})()`, prompt, n))
	if got.Error != "" {
		t.Fatalf("backend webgpu: %s: %s", got.Code, got.Error)
	}
	if got.Backend != "webgpu" || got.Stats.Backend != "webgpu" {
		t.Errorf("load says backend %q, stats say %q: want webgpu", got.Backend, got.Stats.Backend)
	}
	if !slices.Equal(got.IDs, want) {
		t.Errorf("webgpu generated %v\n        native %v", got.IDs, want)
	}
	t.Logf("hf: on webgpu: %v", got.IDs)

	routed, _ := traceLocalOn(t, cpu.Options{Exact: true}, dir, prompt, n)
	all4, one16 := expertSizes(t, dir)
	routed16 := one16 * int64(len(routed)) // every expert of this model is the same size
	budget := (routed16 + all4) / 2
	if routed16 <= budget || all4 > budget {
		t.Fatalf("the routed experts are %d bytes at bf16, all experts %d at q4_0: no budget between them (%d)", routed16, all4, budget)
	}
	for _, c := range []struct {
		quant string
		fits  bool
	}{{"", true}, {"f16", false}} {
		got := eval[gpuVisit](t, gpu, fmt.Sprintf(`(async () => {
			try {
				const e = await mode.create({model: "hf:test/olmoe-tiny", hfEndpoint: "/hf", backend: "webgpu", cache: "none",
					prefetch: false, expertBudgetMB: %v, quant: %q || undefined});
				const r = await e.completions.create({prompt: %q, temperature: 0, max_tokens: %d, return_token_ids: true});
				const stats = await e.stats();
				await e.unload();
				return {ids: r.choices[0].token_ids, backend: e.info.backend, stats};
			} catch (err) {
				return {code: err.code ?? "", error: String(err.message ?? err)};
			}
		})()`, float64(budget)/(1<<20), c.quant, prompt, n))
		st := got.Stats
		switch {
		case got.Error != "":
			t.Errorf("quant %q, budget %d bytes: %s: %s", c.quant, budget, got.Code, got.Error)
		case got.Backend != "webgpu":
			t.Errorf("quant %q: backend %q", c.quant, got.Backend)
		case c.fits && (!slices.Equal(got.IDs, want) || st.ExpertEvictions != 0 || st.ExpertsResident != len(routed) || st.ExpertBytesResident > budget):
			t.Errorf("q4_0 experts under a %d-byte budget: ids %v (native %v), %d evictions, %d experts resident (%d routed), %d bytes",
				budget, got.IDs, want, st.ExpertEvictions, st.ExpertsResident, len(routed), st.ExpertBytesResident)
		case !c.fits && st.ExpertEvictions == 0:
			t.Errorf("f16 experts under a %d-byte budget: no expert evicted (%d resident, %d bytes)", budget, st.ExpertsResident, st.ExpertBytesResident)
		}
		t.Logf("quant %q under an expert budget of %d bytes (routed experts: %d at bf16, all experts %d at q4_0): %d experts resident, %d bytes, %d evictions",
			c.quant, budget, routed16, all4, st.ExpertsResident, st.ExpertBytesResident, st.ExpertEvictions)
	}
}

// expertSizes returns the bytes of all routed experts of the checkpoint
// in dir converted to hfrepo.DefaultQuant, and of one expert as stored
// (bf16).
func expertSizes(t *testing.T, dir string) (all4, one16 int64) {
	t.Helper()
	ld, err := load.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := hfrepo.DefaultQuant.Converter(ld.Model.Config)
	for _, sp := range ld.Model.Config.Spec() {
		if sp.Expert < 0 {
			continue
		}
		w := ld.Model.Weights[sp.Name]
		if w.DType != tensor.BF16 {
			t.Fatalf("%s is %v, not the checkpoint's bf16", sp.Name, w.DType)
		}
		c, err := conv(w)
		if err != nil {
			t.Fatal(err)
		}
		all4 += int64(len(c.Data))
		if sp.Layer == 0 && sp.Expert == 0 {
			one16 += int64(len(w.Data))
		}
	}
	return all4, one16
}
