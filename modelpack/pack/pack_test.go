package pack_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/modelpack/distill"
	"github.com/moderuntime/mode/modelpack/gptq"
	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
)

// synthDir writes a synthetic HF model of arch and returns its directory.
func synthDir(t testing.TB, arch string, edit func(*synth.Options)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), arch)
	o := synth.Default(arch)
	o.Seed = 11
	if edit != nil {
		edit(&o)
	}
	if err := synth.Write(dir, o); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writePack(t testing.TB, src string, o pack.Options) (string, *manifest.Manifest) {
	t.Helper()
	s, err := hf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tj, err := os.ReadFile(filepath.Join(src, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "pack")
	m, err := pack.Write(dir, s, pack.Tokenizer{Kind: "hf", File: tj}, "", o)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// recorder is a shard.Source that remembers which files were read.
type recorder struct {
	shard.Source
	mu    sync.Mutex
	files map[string]int
}

func (r *recorder) Read(ctx context.Context, file string, off, n int64) ([]byte, error) {
	r.mu.Lock()
	r.files[file]++
	r.mu.Unlock()
	return r.Source.Read(ctx, file, off, n)
}

func openPack(t testing.TB, dir string) (*loader.Pack, *recorder) {
	t.Helper()
	m, err := pack.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Source: shard.NewDir(dir), files: map[string]int{}}
	p, err := loader.Load(context.Background(), m, &shard.Fetcher{Src: rec})
	if err != nil {
		t.Fatal(err)
	}
	return p, rec
}

// greedy generates n tokens after prompt.
func greedy(t testing.TB, m *model.Model, o engine.Options, prompt []int, n int) []int {
	t.Helper()
	e, err := engine.New(cpu.New(cpu.Options{}), m, o)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	if _, err := e.Generate(context.Background(), prompt, engine.GenerateOptions{MaxTokens: n, Stop: []int{}},
		func(id int) error { out = append(out, id); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

var prompt = []int{3, 50, 7, 99, 12}

// TestRoundTripExact: an f32 pack of every family, loaded lazily, generates
// exactly the tokens of the source model.
func TestRoundTripExact(t *testing.T) {
	for _, arch := range synth.Arches() {
		t.Run(arch, func(t *testing.T) {
			src := synthDir(t, arch, nil)
			want, err := hf.Load(src)
			if err != nil {
				t.Fatal(err)
			}
			dir, _ := writePack(t, src, pack.Options{Quant: tensor.F32})
			p, _ := openPack(t, dir)
			got := greedy(t, p.Model, engine.Options{Experts: p}, prompt, 24)
			if exp := greedy(t, want, engine.Options{}, prompt, 24); !slices.Equal(got, exp) {
				t.Fatalf("pack tokens %v\nsource tokens %v", got, exp)
			}
		})
	}
}

// TestQuantizedAgreement: packs agree with the f32 model's greedy choice
// (teacher-forced on the f32 continuation, so one early difference does
// not count 63 times) on at least 90% of 64 positions for q8_0, and for
// the synthetic MoE families' q4_0 and q4_k packs, whose dense matrices are
// q8_0 by default; 70% where every matrix is 4-bit (the dense stories260K,
// or --dense-quant q4_0), which no 4.5-bit format can hold to 90% on the
// random models (RATIONALE.md, "Quantisation"). On stories260K, a q4_0 pack
// quantised with GPTQ (calibrated on 64 sequences of 128 tokens the model
// sampled itself) must have at most 95% of plain rounding's logit error.
// GPTQ is not tried on the synthetic models: their random weights give
// nearly uncorrelated inputs, where error feedback has nothing to cancel.
func TestQuantizedAgreement(t *testing.T) {
	type subject struct {
		name string
		src  pack.Source
	}
	var subjects []subject
	if dir := sharedModels(t); dir != "" {
		m, err := llama2c.Load(filepath.Join(dir, "stories260K", "stories260K.bin"))
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, subject{"stories260K", pack.ModelSource{M: m}})
	}
	for _, arch := range synth.Arches() {
		m, err := hf.Load(synthDir(t, arch, agreementShape))
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, subject{arch, pack.ModelSource{M: m}})
	}
	type variant struct {
		q      tensor.DType
		pure   bool // dense matrices in q too (DenseQuant), not q8_0
		gptq   bool
		embed8 bool // embedding table at q8_0 (EmbedQuant)
	}
	for _, sub := range subjects {
		ref := sub.src.(pack.ModelSource).M
		sparse := ref.Config.HasRoutedExperts()
		seqs, refLogits := agreementSeqs(t, ref)
		// All-4-bit variants first: the others' errors are compared with theirs.
		variants := []variant{{q: tensor.Q8_0}, {q: tensor.Q4_0}, {q: tensor.Q4_K}}
		if sparse {
			variants = []variant{{q: tensor.Q8_0}, {q: tensor.Q4_0, pure: true}, {q: tensor.Q4_K, pure: true}, {q: tensor.Q4_0}, {q: tensor.Q4_K}}
			if !ref.Config.TiedOutput {
				variants = append(variants, variant{q: tensor.Q4_0, pure: true, embed8: true})
			}
		}
		var stats *gptq.Stats
		if sub.name == "stories260K" {
			calib, err := distill.SelfGenerate(context.Background(), ref, 64, 128, 7, 0)
			if err != nil {
				t.Fatal(err)
			}
			if stats, err = gptq.Collect(context.Background(), ref, calib, 0); err != nil {
				t.Fatal(err)
			}
			variants = append(variants, variant{q: tensor.Q4_0, gptq: true})
		}
		rms := map[variant]float64{}
		for _, v := range variants {
			name := v.q.String()
			o := pack.Options{Quant: v.q}
			if v.pure {
				name += "-pure"
				o.DenseQuant = v.q
			}
			if v.gptq {
				name += "-gptq"
				o.Quantizer = stats.Quantizer(0)
			}
			if v.embed8 {
				name += "-embed-q8_0"
				o.EmbedQuant = tensor.Q8_0
			}
			t.Run(sub.name+"/"+name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "pack")
				if _, err := pack.Write(dir, sub.src, pack.Tokenizer{Kind: "hf", File: []byte("{}")}, "", o); err != nil {
					t.Fatal(err)
				}
				mf, err := pack.ReadManifest(dir)
				if err != nil {
					t.Fatal(err)
				}
				mf.Tokenizer.Kind = "skip"
				checkFormats(t, mf, v.q, sparse && !v.pure && v.q != tensor.Q8_0, v.embed8)
				p, err := loader.LoadWeights(context.Background(), mf, &shard.Fetcher{Src: shard.NewDir(dir)})
				if err != nil {
					t.Fatal(err)
				}
				got := logitsAlongAll(t, p.Model, p, seqs)
				var rate float64
				rate, rms[v] = logitError(got, refLogits)
				t.Logf("%s %s: greedy agreement %.1f%% of %d positions, logit RMS error %.4f", sub.name, name, 100*rate, len(got), rms[v])
				// Measured on these 1024 positions (RATIONALE.md,
				// "Quantisation"): q8_0 97.9-99.2%; 4-bit experts with
				// q8_0 dense matrices 91.4-96.7%; every matrix 4-bit
				// 77.9-88.3% (the dense llama's q4_0 86.1%), stories260K's
				// q4_0 84.0%, with GPTQ 85.8%.
				bound := 0.9
				if v.q != tensor.Q8_0 && (v.pure || !sparse) {
					bound = 0.7
				}
				if rate < bound {
					t.Errorf("agreement %.1f%% < %.0f%%", 100*rate, 100*bound)
				}
				// 0.83 with this calibration sample.
				if plain := rms[variant{q: v.q}]; v.gptq && !(rms[v] < 0.95*plain) {
					t.Errorf("GPTQ logit RMS error %.4f is not below 95%% of plain rounding's %.4f", rms[v], plain)
				}
				// Measured 0.49-0.64 of all-q4_0's error.
				if plain := rms[variant{q: v.q, pure: true}]; v.embed8 && !(rms[v] < 0.8*plain) {
					t.Errorf("q8_0 embeddings: logit RMS error %.4f is not below 80%% of all-q4_0's %.4f", rms[v], plain)
				}
				// The dense matrices' q8_0 is what buys the agreement:
				// measured 0.27-0.47 of the all-4-bit error.
				if pure := rms[variant{q: v.q, pure: true}]; sparse && !v.pure && !v.embed8 && v.q != tensor.Q8_0 && !(rms[v] < 0.8*pure) {
					t.Errorf("4-bit experts with q8_0 dense matrices: logit RMS error %.4f is not below 80%% of all-%s's %.4f", rms[v], v.q, pure)
				}
			})
		}
	}
}

// checkFormats checks each matrix's stored format: routed experts in q (or
// the fallback their width needs), the output head q8_0 in 4-bit packs,
// the embedding table q8_0 when embed8, and the other matrices q8_0 when
// mixed, else q.
func checkFormats(t *testing.T, mf *manifest.Manifest, q tensor.DType, mixed, embed8 bool) {
	t.Helper()
	want := func(name string, shape []int) tensor.DType {
		if len(shape) < 2 || shape[0] == 1 || strings.HasSuffix(name, ".router") || strings.HasSuffix(name, "_bias") {
			return tensor.F32
		}
		if mf.Model.Arch == "gpt_oss" && strings.Contains(name, ".experts.") {
			return tensor.MXFP4 // kept as the MXFP4 checkpoint has them
		}
		d := q
		fourBit := q == tensor.Q4_0 || q == tensor.Q4_K
		switch {
		case fourBit && (name == model.NameOutput || name == model.NameEmbed && mf.Model.TiedOutput),
			embed8 && name == model.NameEmbed,
			mixed && !strings.Contains(name, ".experts."):
			d = tensor.Q8_0
		}
		// The writer's fallbacks for widths a format cannot block.
		chain := map[tensor.DType][]tensor.DType{
			tensor.Q4_K: {tensor.Q4_K, tensor.Q4_0, tensor.Q8_0},
			tensor.Q4_0: {tensor.Q4_0, tensor.Q8_0},
			tensor.Q8_0: {tensor.Q8_0},
		}[d]
		for _, f := range chain {
			if tensor.CanQuantize(f, shape[1]) {
				return f
			}
		}
		return tensor.F16
	}
	if got, wantDense := mf.DenseQuant, map[bool]string{true: "q8_0"}[mixed]; got != wantDense {
		t.Errorf("manifest dense_quant %q, want %q", got, wantDense)
	}
	for _, sh := range mf.Shards {
		for _, mt := range sh.Tensors {
			if w := want(mt.Name, mt.Shape).String(); mt.DType != w {
				t.Errorf("%s stored as %s, want %s", mt.Name, mt.DType, w)
			}
		}
	}
}

// agreementShape gives a synthetic family TestQuantizedAgreement's shape:
// hidden size 256, and every FFN and expert width a multiple of 32, so that
// each matrix is really stored in the 4-bit format under test (a down
// projection 48 wide would fall back to f16).
func agreementShape(o *synth.Options) {
	o.Dim = 256
	up := func(w int) int { return (w + 31) / 32 * 32 }
	o.FFN, o.ExpertFFN, o.SharedFFN = up(o.FFN), up(o.ExpertFFN), up(o.SharedFFN)
	for i, w := range o.ExpertWidths {
		o.ExpertWidths[i] = up(w)
	}
}

// agreementSeqs are TestQuantizedAgreement's sequences: 64 greedy tokens of
// ref after each of agreementPrompts (one sequence measures agreement only
// to about ±4 points), with ref's logits along them.
func agreementSeqs(tb testing.TB, ref *model.Model) ([][]int, [][]float32) {
	tb.Helper()
	var seqs [][]int
	for _, p := range agreementPrompts(ref.Config.Vocab) {
		seqs = append(seqs, append(p, greedy(tb, ref, engine.Options{}, p, 64)...))
	}
	return seqs, logitsAlongAll(tb, ref, nil, seqs)
}

// logitsAlongAll is logitsAlong over each sequence, one after another.
func logitsAlongAll(tb testing.TB, m *model.Model, src engine.ExpertSource, seqs [][]int) [][]float32 {
	tb.Helper()
	var out [][]float32
	for _, seq := range seqs {
		out = append(out, logitsAlong(tb, m, src, seq)...)
	}
	return out
}

// logitError compares logits with a reference's, position by position: the
// share of positions whose argmax agrees, and the RMS of the differences.
func logitError(got, ref [][]float32) (agreement, rms float64) {
	agree, sq, n := 0, 0.0, 0
	for i := range got {
		if argmax(got[i]) == argmax(ref[i]) {
			agree++
		}
		for j := range got[i] {
			d := float64(got[i][j] - ref[i][j])
			sq += d * d
			n++
		}
	}
	return float64(agree) / float64(len(got)), math.Sqrt(sq / float64(n))
}

// agreementPrompts are TestQuantizedAgreement's prompts: the package's
// prompt, then fifteen of four tokens drawn from a fixed stream.
func agreementPrompts(vocab int) [][]int {
	ps := [][]int{slices.Clone(prompt)}
	rng := rand.New(rand.NewPCG(7, 64))
	for range 15 {
		p := make([]int, 4)
		for i := range p {
			p[i] = rng.IntN(vocab)
		}
		ps = append(ps, p)
	}
	return ps
}

// logitsAlong feeds seq one token at a time and returns the logits after
// each of the last 64 tokens' predecessors.
func logitsAlong(t testing.TB, m *model.Model, src engine.ExpertSource, seq []int) [][]float32 {
	t.Helper()
	o := engine.Options{}
	if src != nil {
		o.Experts = src
	}
	e, err := engine.New(cpu.New(cpu.Options{}), m, o)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float32
	start := len(seq) - 64
	l, err := e.Forward(context.Background(), seq[:start])
	if err != nil {
		t.Fatal(err)
	}
	for i := start; i < len(seq); i++ {
		out = append(out, slices.Clone(l))
		if l, err = e.Forward(context.Background(), seq[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func argmax(v []float32) int { return engine.Greedy{}.Sample(v, nil) }

// TestLazyFetchesOnlyRoutedExperts: the expert shards fetched are exactly
// those of the (layer, expert) pairs the routers chose.
func TestLazyFetchesOnlyRoutedExperts(t *testing.T) {
	src := synthDir(t, "olmoe", func(o *synth.Options) { o.Experts, o.TopK = 16, 2 })
	dir, m := writePack(t, src, pack.Options{Quant: tensor.Q8_0})
	p, rec := openPack(t, dir)
	routed := map[[2]int]bool{}
	greedy(t, p.Model, engine.Options{Experts: p, Trace: func(l, _ int, r [][]routing.Choice) {
		for _, cs := range r {
			for _, c := range cs {
				routed[[2]int{l, c.Expert}] = true
			}
		}
	}}, prompt, 8)
	fetched := map[[2]int]bool{}
	total := 0
	for _, s := range m.Shards {
		if s.Kind != manifest.KindExpert {
			continue
		}
		total++
		if rec.files[s.Pieces[0].File] > 0 {
			fetched[[2]int{s.Layer, s.Expert}] = true
		}
	}
	if len(fetched) == 0 || len(fetched) == total {
		t.Fatalf("fetched %d of %d experts: the test needs a sparse selection", len(fetched), total)
	}
	for k := range routed {
		if !fetched[k] {
			t.Errorf("routed expert %v was not fetched", k)
		}
	}
	for k := range fetched {
		if !routed[k] {
			t.Errorf("expert %v was fetched but never routed to", k)
		}
	}
	st := p.Stats()
	t.Logf("fetched %d of %d experts, %d of %d bytes", st.ExpertFetches, st.TotalExperts, st.Bytes, st.TotalBytes)
}

// TestDeterministic: the same input and flags give a byte-identical pack.
func TestDeterministic(t *testing.T) {
	src := synthDir(t, "qwen2_moe", nil)
	a, _ := writePack(t, src, pack.Options{Quant: tensor.Q4_K})
	b, _ := writePack(t, src, pack.Options{Quant: tensor.Q4_K})
	if da, db := dirHash(t, a), dirHash(t, b); da != db {
		t.Fatalf("two imports differ:\n%s\n%s", da, db)
	}
}

func dirHash(t testing.TB, dir string) string {
	var sb strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&sb, "%s %d %x\n", rel, len(b), b[:min(len(b), 16)])
		if rel == "manifest.json" {
			sb.Write(b)
		}
		return nil
	})
	return sb.String()
}

// TestReadSlice: reading sources a few rows at a time gives the same pack
// byte for byte (rows are converted independently).
func TestReadSlice(t *testing.T) {
	src := synthDir(t, "qwen3_moe", nil)
	for _, q := range []tensor.DType{tensor.F16, tensor.Q4_K} {
		a, _ := writePack(t, src, pack.Options{Quant: q})
		b, _ := writePack(t, src, pack.Options{Quant: q, ReadSlice: 4096})
		if ha, hb := dirHash(t, a), dirHash(t, b); ha != hb {
			al, bl := strings.Split(ha, "\n"), strings.Split(hb, "\n")
			for i := range min(len(al), len(bl)) {
				if al[i] != bl[i] {
					t.Errorf("%v: sliced reads changed the pack: %q vs %q", q, al[i], bl[i])
					break
				}
			}
		}
	}
}

// TestShardCap: a cap smaller than the embedding table splits it into row
// chunks across shards; no shard exceeds the cap; the pack still runs
// exactly.
func TestShardCap(t *testing.T) {
	src := synthDir(t, "llama", func(o *synth.Options) { o.Dim = 128 })
	const cap = 48 << 10
	for _, q := range []tensor.DType{tensor.F32, tensor.Q8_0} {
		dir, m := writePack(t, src, pack.Options{Quant: q, MaxShard: cap})
		chunked := false
		for _, s := range m.Shards {
			if s.Size > cap {
				t.Errorf("%v: shard %s is %d bytes, cap %d", q, s.ID, s.Size, cap)
			}
			for _, x := range s.Tensors {
				chunked = chunked || x.Rows > 0
			}
		}
		if !chunked {
			t.Fatalf("%v: no tensor was split into row chunks", q)
		}
		whole, _ := writePack(t, src, pack.Options{Quant: q})
		p, _ := openPack(t, dir)
		pw, _ := openPack(t, whole)
		if a, b := greedy(t, p.Model, engine.Options{Experts: p}, prompt, 12), greedy(t, pw.Model, engine.Options{Experts: pw}, prompt, 12); !slices.Equal(a, b) {
			t.Errorf("%v: chunked pack %v, whole %v", q, a, b)
		}
	}
}

// TestWriteRefusesAndCleansUp: bad input leaves nothing behind that looks
// like a pack, and an existing directory is never overwritten silently.
func TestWriteRefusesAndCleansUp(t *testing.T) {
	src := synthDir(t, "mixtral", nil)
	s, err := hf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	parent := t.TempDir()
	tok := pack.Tokenizer{Kind: "hf", File: []byte("{}")}

	// a source that fails midway
	dst := filepath.Join(parent, "p1")
	_, err = pack.Write(dst, failing{s, "layers.1.experts.3.up"}, tok, "", pack.Options{Quant: tensor.F16})
	if err == nil || !strings.Contains(err.Error(), "layers.1.experts.3.up") {
		t.Fatalf("error %v does not name the failing tensor", err)
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 0 {
		t.Errorf("a failed import left %v behind", entries)
	}
	// an existing non-pack directory is kept
	user := filepath.Join(parent, "mine")
	os.MkdirAll(user, 0o755)
	os.WriteFile(filepath.Join(user, "notes.txt"), []byte("keep"), 0o644)
	if _, err := pack.Write(user, s, tok, "", pack.Options{Quant: tensor.F16, Force: true}); err == nil {
		t.Fatal("overwrote a directory that is not a pack")
	}
	if b, _ := os.ReadFile(filepath.Join(user, "notes.txt")); string(b) != "keep" {
		t.Fatal("user file lost")
	}
	// an existing pack needs Force
	p := filepath.Join(parent, "p2")
	if _, err := pack.Write(p, s, tok, "", pack.Options{Quant: tensor.F16}); err != nil {
		t.Fatal(err)
	}
	if _, err := pack.Write(p, s, tok, "", pack.Options{Quant: tensor.F16}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second write without force: %v", err)
	}
	if _, err := pack.Write(p, s, tok, "", pack.Options{Quant: tensor.Q8_0, Force: true}); err != nil {
		t.Fatal(err)
	}
	if m, errs := pack.Verify(p); len(errs) != 0 || m.Quant != "q8_0" {
		t.Fatalf("replaced pack: %v, %v", m, errs)
	}
}

// TestGPTQWidenedExperts: GPTQ quantises experts the writer widened with
// zero neurons (olmoe's 48-wide experts become 64, so their down
// projections are q4_0 instead of f16), taking the extra inputs as zero:
// the pack loads, and its logit error stays near plain rounding's.
func TestGPTQWidenedExperts(t *testing.T) {
	m, err := hf.Load(synthDir(t, "olmoe", nil))
	if err != nil {
		t.Fatal(err)
	}
	calib, err := distill.SelfGenerate(context.Background(), m, 16, 64, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := gptq.Collect(context.Background(), m, calib, 0)
	if err != nil {
		t.Fatal(err)
	}
	seq := append(slices.Clone(prompt), greedy(t, m, engine.Options{}, prompt, 64)...)
	ref := logitsAlong(t, m, nil, seq)
	errs := map[bool]float64{}
	for _, withGPTQ := range []bool{false, true} {
		o := pack.Options{Quant: tensor.Q4_0}
		if withGPTQ {
			o.Quantizer = stats.Quantizer(0)
		}
		dir := filepath.Join(t.TempDir(), "pack")
		mf, err := pack.Write(dir, pack.ModelSource{M: m}, pack.Tokenizer{Kind: "hf", File: []byte("{}")}, "", o)
		if err != nil {
			t.Fatal(err)
		}
		if w := mf.Model.FFN[0].ExpertWidths[0]; w != 64 {
			t.Fatalf("expert width %d in the pack, want 48 widened to 64", w)
		}
		for _, sh := range mf.Shards {
			for _, mt := range sh.Tensors {
				if strings.HasSuffix(mt.Name, ".down") && mt.DType != "q4_0" {
					t.Errorf("%s stored as %s, want q4_0", mt.Name, mt.DType)
				}
			}
		}
		mf.Tokenizer.Kind = "skip"
		p, err := loader.LoadWeights(context.Background(), mf, &shard.Fetcher{Src: shard.NewDir(dir)})
		if err != nil {
			t.Fatal(err)
		}
		_, errs[withGPTQ] = logitError(logitsAlong(t, p.Model, p, seq), ref)
	}
	t.Logf("logit RMS error: plain rounding %.4f, GPTQ %.4f", errs[false], errs[true])
	if !(errs[true] < 1.1*errs[false]) {
		t.Errorf("GPTQ on widened experts: logit RMS error %.4f, plain rounding %.4f", errs[true], errs[false])
	}
}

// TestWriteOptionErrors: format options a pack cannot honour are refused
// before anything is written.
func TestWriteOptionErrors(t *testing.T) {
	moe, err := hf.Load(synthDir(t, "olmoe", nil))
	if err != nil {
		t.Fatal(err)
	}
	dense, err := hf.Load(synthDir(t, "llama", nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		m    *model.Model
		o    pack.Options
		want string
	}{
		{"bf16 quant", moe, pack.Options{Quant: tensor.BF16}, "quantisation: bf16 is not a pack format"},
		{"bf16 dense", moe, pack.Options{Quant: tensor.Q4_0, DenseQuant: tensor.BF16}, "dense quantisation: bf16 is not a pack format"},
		{"bf16 embedding", moe, pack.Options{Quant: tensor.Q4_0, EmbedQuant: tensor.BF16}, "embedding quantisation: bf16"},
		{"dense model", dense, pack.Options{Quant: tensor.Q4_0, DenseQuant: tensor.Q8_0}, "needs a model with routed experts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			_, err := pack.Write(filepath.Join(parent, "p"), pack.ModelSource{M: tt.m}, pack.Tokenizer{Kind: "hf", File: []byte("{}")}, "", tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Errorf("a refused write left %v behind", entries)
			}
		})
	}
}

type failing struct {
	pack.Source
	name string
}

func (f failing) Read(name string, r0, n int) (*tensor.Tensor, error) {
	if name == f.name {
		return nil, fmt.Errorf("tensor %s: simulated read failure", name)
	}
	return f.Source.Read(name, r0, n)
}

// TestVerify finds a corrupted shard, a missing shard and a misaligned
// tensor, and passes an intact pack.
func TestVerify(t *testing.T) {
	src := synthDir(t, "olmoe", nil)
	dir, m := writePack(t, src, pack.Options{Quant: tensor.Q4_0})
	if _, errs := pack.Verify(dir); len(errs) != 0 {
		t.Fatalf("intact pack: %v", errs)
	}
	layerShard, expertShard := -1, -1
	for i, s := range m.Shards {
		if s.Kind == manifest.KindLayer && layerShard < 0 {
			layerShard = i
		}
		if s.Kind == manifest.KindExpert && expertShard < 0 {
			expertShard = i
		}
	}
	victim := filepath.Join(dir, m.Shards[layerShard].Pieces[0].File)
	b, _ := os.ReadFile(victim)
	b[len(b)/2] ^= 1
	os.WriteFile(victim, b, 0o644)
	os.Remove(filepath.Join(dir, m.Shards[expertShard].Pieces[0].File))
	_, errs := pack.Verify(dir)
	joined := fmt.Sprint(errs)
	if len(errs) != 2 || !strings.Contains(joined, "shard "+m.Shards[layerShard].ID) || !strings.Contains(joined, "shard "+m.Shards[expertShard].ID) {
		t.Fatalf("verify found %v", errs)
	}
	// the loader refuses the corrupted shard with a clear error
	mf, _ := pack.ReadManifest(dir)
	_, err := loader.Load(context.Background(), mf, &shard.Fetcher{Src: shard.NewDir(dir)})
	if err == nil || !strings.Contains(err.Error(), "sha256") || !strings.Contains(err.Error(), m.Shards[layerShard].ID) {
		t.Fatalf("loading a corrupted pack: %v", err)
	}
}

func sharedModels(t testing.TB) string {
	t.Helper()
	return shared.Models(t)
}

// TestVerifyStaysInThePack: verify reads no file outside the pack, whatever
// the manifest names, and does not hang on a device linked from inside.
func TestVerifyStaysInThePack(t *testing.T) {
	src := synthDir(t, "olmoe", nil)
	dir, m := writePack(t, src, pack.Options{Quant: tensor.Q8_0})
	rewrite := func(edit func(*manifest.Manifest)) {
		t.Helper()
		mm := *m
		edit(&mm)
		b, err := manifest.Marshal(&mm)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rewrite(func(mm *manifest.Manifest) { mm.Tokenizer.File = "../../../../../../../../etc/passwd" })
	if _, errs := pack.Verify(dir); len(errs) != 1 || !strings.Contains(errs[0].Error(), "relative path inside the pack") {
		t.Fatalf("escaping tokenizer path: %v", errs)
	}
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero to link to")
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero")); err != nil {
		t.Skipf("cannot make a symlink: %v", err)
	}
	rewrite(func(mm *manifest.Manifest) { mm.Tokenizer.File = "zero" })
	done := make(chan []error, 1)
	go func() { _, errs := pack.Verify(dir); done <- errs }()
	select {
	case errs := <-done:
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "not a regular file") {
			t.Fatalf("tokenizer linked to /dev/zero: %v", errs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("verify hangs on a tokenizer linked to /dev/zero")
	}
}

// TestWriteRemovesStalePartials: temporary directories a killed import
// into the same destination left behind are removed, and said so; a
// recent one (an import running beside this one), another destination's
// and anything not of the naming pattern are kept.
func TestWriteRemovesStalePartials(t *testing.T) {
	m, err := hf.Load(synthDir(t, "llama", nil))
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	old := time.Now().Add(-time.Hour)
	mk := func(name string, stale bool) string {
		p := filepath.Join(parent, name)
		if err := os.MkdirAll(filepath.Join(p, "shards"), 0o755); err != nil {
			t.Fatal(err)
		}
		if stale {
			os.Chtimes(filepath.Join(p, "shards"), old, old)
			os.Chtimes(p, old, old)
		}
		return p
	}
	gone := []string{mk(".p.partial-0123456789ab", true), mk(".p.partial-ba9876543210.old", true)}
	kept := []string{
		mk(".p.partial-aaaaaaaaaaaa", false), // recent: maybe another import's
		mk(".q.partial-0123456789ab", true),  // another destination
		mk(".p.partial-xyz", true),           // not our pattern
		mk("p.partial-0123456789ab", true),   // not hidden: not ours
		mk("keep", true),
	}
	victim := filepath.Join(parent, "victim")
	os.WriteFile(victim, []byte("x"), 0o644)
	if err := os.Symlink(victim, filepath.Join(parent, ".p.partial-cccccccccccc")); err != nil {
		t.Fatal(err)
	}
	var said []string
	o := pack.Options{Quant: tensor.F16, Logf: func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }}
	if _, err := pack.Write(filepath.Join(parent, "p"), pack.ModelSource{M: m}, pack.Tokenizer{Kind: "hf", File: []byte("{}")}, "", o); err != nil {
		t.Fatal(err)
	}
	for _, p := range gone {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is still there", p)
		}
		if !strings.Contains(strings.Join(said, "\n"), "removed "+p+", left by an import that did not finish") {
			t.Errorf("removing %s was not reported: %q", p, said)
		}
	}
	for _, p := range append(kept, victim, filepath.Join(parent, ".p.partial-cccccccccccc")) {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if len(said) != len(gone) {
		t.Errorf("reported %q", said)
	}
}

// TestVerifyHugeManifest: a manifest's size is checked before it is read.
func TestVerifyHugeManifest(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5 << 30); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	f.Close()
	start := time.Now()
	_, errs := pack.Verify(dir)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "5368709120 bytes, more than the 67108864 accepted") {
		t.Fatalf("errors %v", errs)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

// mixedArch is a mode model whose experts differ in depth and activation.
func mixedArch(o *synth.Options) {
	o.ExpertWidths = []int{32, 96, 64, 16, 40, 24}
	o.Experts = len(o.ExpertWidths)
	o.ExpertArch = []model.ExpertArch{{Extra: []int{24}}, {Act: model.ActGELUTanh}, {Act: model.ActReLU2, Extra: []int{16, 40}},
		{}, {Act: model.ActGELUTanh, Extra: []int{72}}, {Act: model.ActSiLU}}
}

// TestMixedArchRoundTrip: packs of a model with experts of mixed depth and
// activation round-trip through the writer and the loader: the f32 pack's
// tensors are the source's bit for bit and it generates the source's
// tokens; 4-bit packs (whose odd-width blocks are widened with zero
// neurons, later blocks included) load, keep every expert's architecture
// and agree with the source's greedy tokens on most positions.
func TestMixedArchRoundTrip(t *testing.T) {
	src := synthDir(t, "mode", mixedArch)
	want, err := hf.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(want.Config.FFN[0].ExpertArch, []model.ExpertArch{{Extra: []int{24}}, {Act: model.ActGELUTanh}, {Act: model.ActReLU2, Extra: []int{16, 40}},
		{}, {Act: model.ActGELUTanh, Extra: []int{72}}, {Act: model.ActSiLU}}, func(a, b model.ExpertArch) bool { return a.Act == b.Act && slices.Equal(a.Extra, b.Extra) }) {
		t.Fatalf("source model's expert_arch %+v", want.Config.FFN[0].ExpertArch)
	}
	exp := greedy(t, want, engine.Options{}, prompt, 24)
	for _, q := range []tensor.DType{tensor.F32, tensor.Q8_0, tensor.Q4_0} {
		t.Run(q.String(), func(t *testing.T) {
			dir, m := writePack(t, src, pack.Options{Quant: q})
			for l, f := range m.Model.FFN {
				if len(f.ExpertArch) != len(f.ExpertWidths) {
					t.Fatalf("layer %d: manifest has %d expert_arch entries for %d experts", l, len(f.ExpertArch), len(f.ExpertWidths))
				}
				for e, a := range f.ExpertArch {
					if w := want.Config.FFN[l].Arch(e); a.Activation() != w.Activation() || a.Depth() != w.Depth() {
						t.Errorf("layer %d expert %d: manifest %+v, source %+v", l, e, a, w)
					}
				}
			}
			p, _ := openPack(t, dir)
			got := greedy(t, p.Model, engine.Options{Experts: p}, prompt, 24)
			if q == tensor.F32 {
				whole, err := p.Whole(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				for name, wt := range want.Weights {
					a, _ := wt.Float32s()
					b, err := whole.Weights[name].Float32s()
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if !slices.Equal(a, b) {
						t.Fatalf("tensor %s differs after the round trip", name)
					}
				}
				if !slices.Equal(got, exp) {
					t.Fatalf("pack tokens %v\nsource tokens %v", got, exp)
				}
				return
			}
			// Teacher-forced on the source's continuation, so that one early
			// difference does not count for every later position.
			ids := append(slices.Clone(prompt), exp...)
			argmaxes := func(m *model.Model, o engine.Options) []int {
				e, err := engine.New(cpu.New(cpu.Options{}), m, o)
				if err != nil {
					t.Fatal(err)
				}
				var out []int
				for _, id := range ids {
					lg, err := e.Forward(context.Background(), []int{id})
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, slices.Index(lg, slices.Max(lg)))
				}
				return out
			}
			a, b := argmaxes(want, engine.Options{}), argmaxes(p.Model, engine.Options{Experts: p})
			same := 0
			for i := range a {
				if a[i] == b[i] {
					same++
				}
			}
			t.Logf("%v: %d of %d teacher-forced greedy choices equal the source's", q, same, len(a))
			if min := map[tensor.DType]float64{tensor.Q8_0: 0.9, tensor.Q4_0: 0.7}[q]; float64(same) < min*float64(len(a)) {
				t.Errorf("%v pack agrees on %d of %d positions, want at least %.0f%%", q, same, len(a), 100*min)
			}
		})
	}
}

// TestRefusesUnknownArch: a manifest naming an activation or a depth the
// kernels do not implement is refused with a message naming the manifest
// and the field.
func TestRefusesUnknownArch(t *testing.T) {
	src := synthDir(t, "mode", mixedArch)
	dir, _ := writePack(t, src, pack.Options{Quant: tensor.F32})
	path := filepath.Join(dir, "manifest.json")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		edit func(*model.ExpertArch)
		want string
	}{
		{func(a *model.ExpertArch) { a.Act = "swish" }, `layer 0: expert_arch[2].act "swish" is not one the kernels implement`},
		{func(a *model.ExpertArch) { a.Extra = make([]int, 8) }, `layer 0: expert_arch[2] has depth 9, more than the 8 supported`},
		{func(a *model.ExpertArch) { a.Extra[1] = -40 }, `layer 0: expert_arch[2].extra_widths: width -40 out of range`},
	} {
		m, err := manifest.Parse(orig)
		if err != nil {
			t.Fatal(err)
		}
		c.edit(&m.Model.FFN[0].ExpertArch[2])
		b, err := manifest.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = loader.Open(context.Background(), dir, shard.HTTPOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "manifest") {
			t.Errorf("error %v, want one naming the manifest and %q", err, c.want)
		}
	}
}
