package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/moderuntime/mode/internal/rss"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/load"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
)

// synthetic models for benchmarks, built in memory from a seed.
var benchSynth = map[string]func() model.Config{
	// Mixtral-shaped: d=512, 8 layers, 8 experts of width 1408, top-2.
	"mixtral": func() model.Config {
		c := testmodel.Config(512, 8, 8, 2, 32000)
		c.MaxSeq = 1024
		c.Arch = "mixtral-synth"
		for range c.Layers {
			c.FFN = append(c.FFN, model.FFN{
				ExpertWidths: []int{1408, 1408, 1408, 1408, 1408, 1408, 1408, 1408},
				Router:       &model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true},
			})
		}
		return c
	},
}

func cmdBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mode bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("m", "", "model: llama2.c checkpoint or HF directory")
	synth := fs.String("synth", "", "benchmark a synthetic in-memory model instead: mixtral")
	promptN := fs.Int("prompt-tokens", 64, "prompt length for prefill")
	decodeN := fs.Int("decode-tokens", 64, "tokens to decode")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	baseline := fs.Bool("baseline", true, "also run the single-threaded naive loop and print the ratio")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var m *model.Model
	name := *path
	switch {
	case *synth != "":
		mk, ok := benchSynth[*synth]
		if !ok {
			return fmt.Errorf("--synth %q: known: mixtral", *synth)
		}
		m, name = testmodel.Random(mk(), 1), *synth+" (synthetic)"
	case *path != "":
		ld, err := load.Open(*path, "")
		if err != nil {
			return err
		}
		m = ld.Model
	default:
		fmt.Fprintln(stderr, "mode bench: give -m MODEL or --synth NAME")
		return errUsage
	}
	if *promptN < 1 || *decodeN < 1 {
		return fmt.Errorf("--prompt-tokens and --decode-tokens must be >= 1")
	}
	if *promptN+*decodeN > m.Config.MaxSeq {
		return fmt.Errorf("%d prompt + %d decode tokens pass the context of %d", *promptN, *decodeN, m.Config.MaxSeq)
	}
	total, active := m.Config.Params()
	fmt.Fprintf(stdout, "model %s: %d layers, dim %d, %.1fM params (%.1fM active per token)\n",
		name, m.Config.Layers, m.Config.Dim, float64(total)/1e6, float64(active)/1e6)
	measure := func(o cpu.Options) (engine.Result, error) {
		e, err := engine.New(cpu.New(o), m, engine.Options{MaxSeq: *promptN + *decodeN})
		if err != nil {
			return engine.Result{}, err
		}
		prompt := make([]int, *promptN)
		for i := range prompt {
			prompt[i] = (i*7919 + 13) % m.Config.Vocab
		}
		return e.Generate(context.Background(), prompt, engine.GenerateOptions{MaxTokens: *decodeN, Stop: []int{}},
			func(int) error { return nil })
	}
	fast, err := measure(cpu.Options{Threads: *threads})
	if err != nil {
		return err
	}
	report := func(label string, r engine.Result) {
		fmt.Fprintf(stdout, "%-28s prefill %9.1f tok/s   decode %8.1f tok/s\n", label, r.PrefillTokensPerSecond(), r.DecodeTokensPerSecond())
	}
	report("cpu backend", fast)
	if *baseline {
		t0 := time.Now()
		slow, err := measure(cpu.Options{Naive: true})
		if err != nil {
			return err
		}
		report("naive loop, 1 thread", slow)
		fmt.Fprintf(stdout, "%-28s prefill %8.2fx          decode %7.2fx   (baseline took %v)\n", "ratio to naive",
			fast.PrefillTokensPerSecond()/slow.PrefillTokensPerSecond(), fast.DecodeTokensPerSecond()/slow.DecodeTokensPerSecond(),
			time.Since(t0).Round(time.Millisecond))
	}
	if peak, err := rss.Peak(); err == nil {
		fmt.Fprintf(stdout, "peak RSS %.1f MiB\n", float64(peak)/(1<<20))
	} else {
		fmt.Fprintf(stdout, "peak RSS unavailable: %v\n", err)
	}
	return nil
}
