package pack_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// BenchmarkLazyFetch packs an OLMoE-shaped model (16 layers, 64 experts,
// top-8, q4_0), runs a 32-token prompt and 128 decoded tokens with lazy
// experts, and reports the share of the pack's bytes fetched before the
// first generated token and after 128 tokens.
func BenchmarkLazyFetch(b *testing.B) {
	src := synthDir(b, "olmoe", func(o *synth.Options) {
		o.Layers, o.Experts, o.TopK = 16, 64, 8
		o.Dim, o.Heads, o.KVHeads, o.FFN = 128, 4, 4, 128 // OLMoE experts are FFN wide
		o.MaxSeq = 256
	})
	dir, m := writePack(b, src, pack.Options{Quant: tensor.Q4_0})
	var total int64
	for _, s := range m.Shards {
		total += s.Size
	}
	prompt := make([]int, 32)
	for i := range prompt {
		prompt[i] = (i*37 + 11) % 500
	}
	b.ResetTimer()
	var first, after, hit float64
	for range b.N {
		p, _ := openPack(b, dir)
		e, err := engine.New(cpu.New(cpu.Options{}), p.Model, engine.Options{Experts: p, Prefetch: true})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		_, err = e.Generate(context.Background(), prompt, engine.GenerateOptions{MaxTokens: 128, Stop: []int{}}, func(int) error {
			if n == 0 {
				first = float64(p.Stats().Bytes) / float64(total)
			}
			n++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		after = float64(p.Stats().Bytes) / float64(total)
		st := p.Stats()
		hit = float64(st.PrefetchHits) / float64(max(st.Prefetched, 1))
	}
	b.ReportMetric(100*first, "%pack_before_first_token")
	b.ReportMetric(100*after, "%pack_after_128_tokens")
	b.ReportMetric(float64(total)/(1<<20), "MiB_pack")
	b.ReportMetric(100*hit, "%prefetch_hits")
}

// BenchmarkImport measures import throughput (source bytes per second) of
// an f32 Mixtral-shaped checkpoint to q4_0.
func BenchmarkImport(b *testing.B) {
	src := synthDir(b, "mixtral", func(o *synth.Options) { o.Dim, o.Layers, o.FFN = 512, 4, 1024 })
	var size int64
	filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".safetensors" {
			info, _ := d.Info()
			size += info.Size()
		}
		return nil
	})
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		s, err := hf.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		dir := filepath.Join(b.TempDir(), "p")
		if _, err := pack.Write(dir, s, pack.Tokenizer{Kind: "hf", File: []byte("{}")}, "", pack.Options{Quant: tensor.Q4_0}); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkNoiseFloor measures, on the synthetic families (dim 256) of
// TestQuantizedAgreement, how much greedy agreement an all-4-bit pack could
// keep at best. Each matrix but the routers gets Gaussian noise with the
// smallest RMS error any code of q4_0's 4.5 bits per weight can have on
// Gaussian weights (the rate-distortion bound: 2^-4.5 of the weights' RMS),
// the output head that of q8_0's 8.5 bits, as all-4-bit packs keep it at
// q8_0. It reports that agreement beside the agreement of the all-q4_0 pack
// and of the default q4_0 pack (q8_0 dense matrices), over the same 1024
// positions (RATIONALE.md, "Quantisation").
func BenchmarkNoiseFloor(b *testing.B) {
	for _, arch := range synth.Arches() {
		b.Run(arch, func(b *testing.B) {
			src := synthDir(b, arch, agreementShape)
			ref, err := hf.Load(src)
			if err != nil {
				b.Fatal(err)
			}
			seqs, want := agreementSeqs(b, ref)
			agreement := func(m *model.Model, src engine.ExpertSource) float64 {
				rate, _ := logitError(logitsAlongAll(b, m, src, seqs), want)
				return 100 * rate
			}
			packed := func(o pack.Options) float64 {
				dir, _ := writePack(b, src, o)
				p, _ := openPack(b, dir)
				return agreement(p.Model, p)
			}
			sparse := ref.Config.HasRoutedExperts()
			all4 := pack.Options{Quant: tensor.Q4_0}
			if sparse {
				all4.DenseQuant = tensor.Q4_0
			}
			var floor, allQ4, mixed float64
			for range b.N {
				floor = agreement(withNoise(b, ref, math.Exp2(-4.5), math.Exp2(-8.5)), nil)
				allQ4 = packed(all4)
				if sparse {
					mixed = packed(pack.Options{Quant: tensor.Q4_0})
				}
			}
			b.ReportMetric(floor, "%agree_at_4.5bit_bound")
			b.ReportMetric(allQ4, "%agree_all_q4_0")
			if sparse { // a dense model's q4_0 pack is all q4_0
				b.ReportMetric(mixed, "%agree_q4_0_experts")
			}
		})
	}
}

// withNoise returns m with Gaussian noise added to every matrix but the
// routers: rel times the matrix's RMS, headRel for the output head (the
// embedding table when tied).
func withNoise(tb testing.TB, m *model.Model, rel, headRel float64) *model.Model {
	out := &model.Model{Config: m.Config, Weights: model.Weights{}}
	for i, sp := range m.Config.Spec() {
		t := m.Weights[sp.Name]
		if len(sp.Shape) < 2 || sp.Shape[0] == 1 || strings.HasSuffix(sp.Name, ".router") {
			out.Weights[sp.Name] = t
			continue
		}
		v, err := t.Float32s()
		if err != nil {
			tb.Fatal(err)
		}
		v = slices.Clone(v)
		ss := 0.0
		for _, x := range v {
			ss += float64(x) * float64(x)
		}
		r := rel
		if sp.Name == model.NameOutput || sp.Name == model.NameEmbed && m.Config.TiedOutput {
			r = headRel
		}
		sd := r * math.Sqrt(ss/float64(len(v)))
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		for j := range v {
			v[j] += float32(sd * rng.NormFloat64())
		}
		out.Weights[sp.Name] = tensor.FromF32(sp.Name, sp.Shape, v)
	}
	return out
}
