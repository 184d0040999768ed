package distill

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/moderuntime/mode/internal/rss"
	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/model"
)

// BenchmarkDistillStories260K: 8 experts, top-4, 90 self-generated
// calibration sequences of 128 tokens, no fine-tuning.
func BenchmarkDistillStories260K(b *testing.B) {
	teacher, err := llama2c.Load(filepath.Join(shared.Models(b), "stories260K", "stories260K.bin"))
	if err != nil {
		b.Fatal(err)
	}
	seqs, err := SelfGenerate(context.Background(), teacher, 100, 128, 1, 0)
	if err != nil {
		b.Fatal(err)
	}
	benchDistill(b, teacher, seqs[:90], seqs[90:])
}

// BenchmarkDistillDense1024: a random dense model with dim 1024, FFN width
// 4096 and 8 layers, calibrated on 4 sequences of 32 tokens.
func BenchmarkDistillDense1024(b *testing.B) {
	cfg := testmodel.Config(1024, 8, 16, 8, 512)
	cfg.TiedOutput = true
	for range cfg.Layers {
		cfg.FFN = append(cfg.FFN, model.FFN{SharedWidths: []int{4096}})
	}
	teacher := testmodel.Random(cfg, 1)
	seqs := randomSeqs(5, 32, cfg.Vocab, 1)
	benchDistill(b, teacher, seqs[:4], seqs[4:])
}

func benchDistill(b *testing.B, teacher *model.Model, train, held [][]int) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Distill(teacher, train, held, Options{Experts: 8, TopK: 4, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	if p, err := rss.Peak(); err == nil {
		b.ReportMetric(float64(p)/(1<<20), "peak-MiB")
	}
}

// BenchmarkTrainStepStories260K: one fine-tuning step (routers and
// experts, batch 8 × 128 tokens, KL to the teacher) of a top-4 of 8
// student of stories260K.
func BenchmarkTrainStepStories260K(b *testing.B) {
	teacher, err := llama2c.Load(filepath.Join(shared.Models(b), "stories260K", "stories260K.bin"))
	if err != nil {
		b.Fatal(err)
	}
	seqs, err := SelfGenerate(context.Background(), teacher, 9, 128, 1, 0)
	if err != nil {
		b.Fatal(err)
	}
	student, _, err := Distill(teacher, seqs[:8], seqs[8:], Options{Experts: 8, TopK: 4, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	tn, sn := mustNet(b, teacher), mustNet(b, student)
	o := TrainOptions{Steps: 1, LR: 1e-3, KLWeight: 1, LBWeight: 0.01, ZWeight: 0.001, Experts: true, Batch: 8}
	b.ResetTimer()
	for b.Loop() {
		if _, err := trainNet(sn, tn, seqs[:8], o, 0, func(string, ...any) {}); err != nil {
			b.Fatal(err)
		}
	}
}
