package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/moderuntime/mode/modelpack/distill"
	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

func cmdDistill(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("modelpack distill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "output pack directory (required)")
	tok := fs.String("z", "", "tokenizer file (default: found beside the model)")
	quant := fs.String("quant", "f32", "weight format: f32, f16, q8_0, q4_0, q4_k")
	force := fs.Bool("force", false, "replace an existing pack at -o")
	experts := fs.Int("experts", 8, "routed experts per layer")
	topK := fs.Int("top-k", 2, "experts each token uses")
	balanced := fs.Bool("balanced", false, "give every expert the same width")
	shared := fs.Int("shared", 0, "neurons of an always-on shared expert")
	calib := fs.String("calib", "", "calibration text file")
	selfGen := fs.Int("self-generate", 0, "sample this many calibration sequences from the teacher instead of --calib")
	seqLen := fs.Int("seq-len", 128, "tokens per calibration sequence")
	holdout := fs.Float64("holdout", 0.1, "fraction of sequences held out for the report")
	seed := fs.Uint64("seed", 1, "seed for sampling and clustering")
	weightsOnly := fs.Bool("weights-only", false, "cluster neurons by weights alone, without activation patterns")
	steps := fs.Int("train-steps", 0, "fine-tuning steps (0: none)")
	lr := fs.Float64("lr", 1e-3, "fine-tuning learning rate")
	kl := fs.Float64("kl-weight", 1, "weight of KL(teacher||student)")
	lb := fs.Float64("lb-weight", 0.01, "weight of the load-balancing loss")
	z := fs.Float64("z-weight", 0.001, "weight of the router z-loss")
	trainExperts := fs.Bool("train-experts", false, "also fine-tune the experts")
	batch := fs.Int("batch", 8, "sequences per fine-tuning step")
	report := fs.String("report", "", "report JSON file (default: PACKDIR/distill-report.json)")
	threads := fs.Int("threads", 0, "goroutines (0: all cores)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		fmt.Fprintln(stderr, "usage: modelpack distill SRC -o PACKDIR --experts 8 --top-k 4 [--balanced] [--shared N] [--calib FILE | --self-generate N] [flags]")
		fs.PrintDefaults()
		return errUsage
	}
	if (*calib == "") == (*selfGen == 0) {
		return fmt.Errorf("give exactly one of --calib FILE and --self-generate N")
	}
	q, err := tensor.ParseDType(*quant)
	if err != nil {
		return fmt.Errorf("--quant: %w", err)
	}
	in, err := importer.Open(pos[0], *tok)
	if err != nil {
		return err
	}
	defer in.Close()
	teacher, err := loadModel(in.Source)
	if err != nil {
		return err
	}
	var seqs [][]int
	if *calib != "" {
		text, err := os.ReadFile(*calib)
		if err != nil {
			return fmt.Errorf("--calib: %w", err)
		}
		tk, err := openTokenizer(in.Tokenizer, teacher.Config.Vocab)
		if err != nil {
			return err
		}
		ids := tk.Encode(string(text))
		if len(ids) == 0 {
			return fmt.Errorf("--calib %s: no tokens (the file is empty)", *calib)
		}
		if bos := tk.BOS(); in.Tokenizer.AddBOS && bos >= 0 {
			ids = append([]int{bos}, ids...)
		}
		seqs = distill.Chunk(ids, min(*seqLen, teacher.Config.MaxSeq))
	} else {
		fmt.Fprintf(stderr, "sampling %d sequences of %d tokens from the teacher\n", *selfGen, *seqLen)
		if seqs, err = distill.SelfGenerate(context.Background(), teacher, *selfGen, *seqLen, *seed, *threads); err != nil {
			return err
		}
	}
	train, held, err := distill.Split(seqs, *holdout)
	if err != nil {
		return fmt.Errorf("calibration data: %w", err)
	}
	student, rep, err := distill.Distill(teacher, train, held, distill.Options{
		Experts: *experts, TopK: *topK, Balanced: *balanced, Shared: *shared, Seed: *seed, WeightsOnly: *weightsOnly,
		Train: distill.TrainOptions{Steps: *steps, LR: *lr, KLWeight: *kl, LBWeight: *lb, ZWeight: *z,
			Experts: *trainExperts, Batch: *batch},
		Threads: *threads, Log: stderr,
	})
	if err != nil {
		return err
	}
	if _, err := pack.Write(*out, pack.ModelSource{M: student}, in.Tokenizer, in.ChatTemplate, pack.Options{Quant: q, Force: *force}); err != nil {
		return err
	}
	if err := rep.WriteText(stdout); err != nil {
		return err
	}
	path := *report
	if path == "" {
		path = filepath.Join(*out, "distill-report.json")
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", *out, path)
	return nil
}

// loadModel reads every tensor of src into memory.
func loadModel(src pack.Source) (*model.Model, error) {
	if ms, ok := src.(pack.ModelSource); ok {
		return ms.M, nil
	}
	cfg := src.Config()
	w := model.Weights{}
	for _, sp := range cfg.Spec() {
		t, err := src.Read(sp.Name, 0, 0)
		if err != nil {
			return nil, err
		}
		w[sp.Name] = t
	}
	return &model.Model{Config: cfg, Weights: w}, nil
}

// openTokenizer decodes the tokenizer an importer found.
func openTokenizer(t pack.Tokenizer, vocab int) (tokenizer.Tokenizer, error) {
	if t.Kind == "llama2c" {
		return tokenizer.LoadLlama2C(bytes.NewReader(t.File), vocab)
	}
	return tokenizer.LoadHF(t.File, t.Config)
}
