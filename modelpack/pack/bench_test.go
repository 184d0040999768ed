package pack_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/tensor"
)

// BenchmarkLazyFetch packs an OLMoE-shaped model (16 layers, 64 experts,
// top-8, q4_0), runs a 32-token prompt and 128 decoded tokens with lazy
// experts, and reports the share of the pack's bytes fetched before the
// first generated token and after 128 tokens.
func BenchmarkLazyFetch(b *testing.B) {
	src := synthDir(b, "olmoe", func(o *synth.Options) {
		o.Layers, o.Experts, o.TopK = 16, 64, 8
		o.Dim, o.Heads, o.KVHeads, o.ExpertFFN = 128, 4, 4, 128
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
