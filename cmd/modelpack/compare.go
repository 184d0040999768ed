package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/moderuntime/mode/modelpack/distill"
	"github.com/moderuntime/mode/modelpack/load"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

// cmdCompare measures a student (a distilled or quantised pack, or any
// model) against a teacher on text neither was fitted to: the held-out
// columns of a distillation report over as many positions as asked for.
func cmdCompare(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("modelpack compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	calib := fs.String("calib", "", "text file to compare on")
	selfGen := fs.Int("self-generate", 0, "compare on this many sequences sampled from the teacher instead of --calib")
	seqLen := fs.Int("seq-len", 128, "tokens per sequence")
	seed := fs.Uint64("seed", 1, "seed for sampling (use one the student was not distilled with)")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	threads := fs.Int("threads", 0, "goroutines (0: all cores)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "usage: modelpack compare TEACHER STUDENT (--self-generate N [--seed S] | --calib FILE) [--seq-len L] [--json FILE]")
		fmt.Fprint(stderr, `
TEACHER and STUDENT are packs (directory, manifest or URL) or source
models (HF directory, GGUF file, llama2.c checkpoint).

`)
		fs.PrintDefaults()
		return errUsage
	}
	if (*calib == "") == (*selfGen == 0) {
		return fmt.Errorf("give exactly one of --calib FILE and --self-generate N")
	}
	ctx := context.Background()
	teacher, err := load.Any(ctx, pos[0], "")
	if err != nil {
		return fmt.Errorf("teacher: %w", err)
	}
	student, err := load.Any(ctx, pos[1], "")
	if err != nil {
		return fmt.Errorf("student: %w", err)
	}
	tok := func() (tokenizer.Tokenizer, bool, error) { return teacher.Tokenizer, teacher.AddBOS, nil }
	seqs, err := calibration(tok, teacher.Model, *calib, *selfGen, *seqLen, *seed, *threads, stderr)
	if err != nil {
		return err
	}
	rep, err := distill.Compare(teacher.Model, student.Model, seqs, *threads)
	if err != nil {
		return err
	}
	if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	return nil
}
