package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moderuntime/mode/internal/rss"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/load"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/shard"
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
	path := fs.String("m", "", "model: a pack, llama2.c checkpoint, GGUF or HF directory")
	synth := fs.String("synth", "", "benchmark a synthetic in-memory model instead: mixtral")
	prompts := fs.String("prompt-tokens", "64", "prompt lengths for prefill, comma-separated (one without --peer)")
	decodeN := fs.Int("decode-tokens", 64, "tokens to decode")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores); with --wasm, guests: the first and its expert peers")
	baseline := fs.Bool("baseline", true, "also run the single-threaded naive loop and print the ratio")
	ggufPath := fs.String("gguf", "", "--peer: the GGUF the pack given by -m was imported from")
	peer := fs.String("peer", "", "compare with another runtime on the same weights: llama.cpp (node-llama-cpp)")
	script := fs.String("peer-script", "scripts/llamacpp/bench.mjs", "--peer llama.cpp: the node script that drives it")
	runs := fs.Int("runs", 3, "--peer: runs per side and prompt length")
	jsonOut := fs.Bool("json", false, "run once on -m with --prompt-ids and print the timings as JSON (what --peer runs per run)")
	promptIDs := fs.String("prompt-ids", "", "--json: the prompt as comma-separated token ids")
	exact := fs.Bool("exact", false, "--json: run the CPU backend's exact path (run.c's summation order) instead of the fast one; --peer: also run it, as a third side")
	bandwidth := fs.Bool("bandwidth", false, "print the memory read bandwidth at 1 and --threads threads as JSON (what --peer runs between its runs)")
	wasm := fs.String("wasm", "", "the wasip1 build of mode: with --json, run the side under wazero; with -m PACK alone, compare it with native, interleaved (decode ratio to native)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	lengths, err := parseInts(*prompts)
	if err != nil {
		return fmt.Errorf("--prompt-tokens: %w", err)
	}
	if *decodeN < 1 {
		return fmt.Errorf("--decode-tokens must be >= 1")
	}
	ctx := context.Background()
	switch {
	case *bandwidth:
		return benchBandwidth(ctx, *threads, stdout)
	case *jsonOut && *wasm != "":
		return benchJSONWasm(*wasm, *path, args, *threads, stdout, stderr)
	case *jsonOut:
		ids, err := parseInts(*promptIDs)
		if err != nil || *path == "" {
			return fmt.Errorf("--json needs -m MODEL and --prompt-ids: %v", err)
		}
		return benchJSON(ctx, *path, ids, *decodeN, *threads, *exact, stdout)
	case *wasm != "":
		if *path == "" || *peer != "" || len(lengths) != 1 || *runs < 1 {
			fmt.Fprintln(stderr, "mode bench --wasm FILE: give -m PACK and one --prompt-tokens length")
			return errUsage
		}
		return compareWasm(ctx, *wasm, *path, lengths[0], *decodeN, *threads, *runs, stdout, stderr)
	case *peer != "":
		if *peer != "llama.cpp" {
			return fmt.Errorf("--peer %q: known: llama.cpp", *peer)
		}
		if *path == "" || *ggufPath == "" || *threads < 1 || *runs < 1 {
			fmt.Fprintln(stderr, "mode bench --peer llama.cpp: give -m PACK --gguf FILE --threads N (the pack imported from the GGUF, so both run the same weights)")
			return errUsage
		}
		return comparePeer(ctx, peerOptions{pack: *path, gguf: *ggufPath, script: *script, threads: *threads, decode: *decodeN,
			prompts: lengths, runs: *runs, exact: *exact}, stdout, stderr)
	}
	if len(lengths) != 1 {
		return fmt.Errorf("--prompt-tokens: one length without --peer")
	}
	promptN := lengths[0]
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
		ld, err := load.Any(ctx, *path, "")
		if err != nil {
			return err
		}
		m = ld.Model
	default:
		fmt.Fprintln(stderr, "mode bench: give -m MODEL or --synth NAME")
		return errUsage
	}
	if promptN+*decodeN > m.Config.MaxSeq {
		return fmt.Errorf("%d prompt + %d decode tokens pass the context of %d", promptN, *decodeN, m.Config.MaxSeq)
	}
	total, active := m.Config.Params()
	fmt.Fprintf(stdout, "model %s: %d layers, dim %d, %.1fM params (%.1fM active per token)\n",
		name, m.Config.Layers, m.Config.Dim, float64(total)/1e6, float64(active)/1e6)
	prompt := make([]int, promptN)
	for i := range prompt {
		prompt[i] = (i*7919 + 13) % m.Config.Vocab
	}
	measure := func(o cpu.Options) (engine.Result, error) {
		r, _, err := generate(ctx, m, o, prompt, *decodeN)
		return r, err
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

// generate runs a greedy generation of n tokens after prompt on a fresh
// engine and returns its timings and tokens.
func generate(ctx context.Context, m *model.Model, o cpu.Options, prompt []int, n int) (engine.Result, []int, error) {
	e, b, err := benchEngine(m, o, len(prompt)+n)
	if err != nil {
		return engine.Result{}, nil, err
	}
	defer b.Close()
	return greedy(ctx, e, prompt, n)
}

// benchEngine is an engine on a new CPU backend (with the wasm guest's
// expert peers, if any) for sequences of up to maxSeq tokens.
func benchEngine(m *model.Model, o cpu.Options, maxSeq int) (*engine.Engine, *cpu.Backend, error) {
	o.Threads = poolThreads(o.Threads)
	b := cpu.New(o)
	if ps := guestPeers(); len(ps) > 0 {
		b.SetPeers(ps) // the exact path ignores them
	}
	e, err := engine.New(b, m, engine.Options{MaxSeq: maxSeq, ShareWeights: true})
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return e, b, nil
}

// greedy runs a greedy generation of n tokens after prompt on e from its
// start and returns the timings and tokens.
func greedy(ctx context.Context, e *engine.Engine, prompt []int, n int) (engine.Result, []int, error) {
	e.Reset()
	var toks []int
	r, err := e.Generate(ctx, prompt, engine.GenerateOptions{MaxTokens: n, Stop: []int{}},
		func(t int) error { toks = append(toks, t); return nil })
	return r, toks, err
}

// benchJSON is one side of `mode bench --peer`: it loads the model whole,
// warms up with the whole prompt and one decode step (as llama-bench
// does), then times one greedy generation on the same engine (as the
// llama.cpp script reuses its context) and prints it with the process's
// peak RSS. Reusing the engine keeps what its first use does out of the
// timed run, as llama.cpp's context creation is: with expert peers (a
// wasm guest's --threads), the splitting of each routed expert on its
// first use, which a fresh engine for the timed run did again inside its
// prefill.
func benchJSON(ctx context.Context, path string, prompt []int, n, threads int, exact bool, stdout io.Writer) error {
	anyModel := load.Any
	if isPack(path) {
		anyModel = func(ctx context.Context, path, _ string) (*load.Loaded, error) {
			return load.Pack(ctx, path, shard.HTTPOptions{}) // through the host, in a wasip1 guest
		}
	}
	ld, err := anyModel(ctx, path, "")
	if err != nil {
		return err
	}
	m := ld.Model
	if len(prompt)+n > m.Config.MaxSeq {
		return fmt.Errorf("%d prompt + %d decode tokens pass the context of %d", len(prompt), n, m.Config.MaxSeq)
	}
	for _, t := range prompt {
		if t < 0 || t >= m.Config.Vocab {
			return fmt.Errorf("--prompt-ids: %d outside the vocabulary of %d", t, m.Config.Vocab)
		}
	}
	e, b, err := benchEngine(m, cpu.Options{Threads: threads, Exact: exact}, len(prompt)+n)
	if err != nil {
		return err
	}
	defer b.Close()
	if _, _, err := greedy(ctx, e, prompt, 2); err != nil {
		return err
	}
	r, toks, err := greedy(ctx, e, prompt, n)
	if err != nil {
		return err
	}
	peak, err := rss.Peak()
	if err != nil && goruntime.GOARCH != "wasm" {
		return err // a wasm guest has no RSS of its own: its host reports it
	}
	run := sideRun{PrefillMS: ms(r.Prefill), DecodeMS: ms(r.Decode), PrefillTokens: r.Prompt, DecodeEvals: r.Generated - 1, Tokens: toks}
	return json.NewEncoder(stdout).Encode(sideReport{Runs: []sideRun{run}, MaxRSSBytes: peak})
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// parseInts parses comma-separated non-negative integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a list of non-negative integers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// benchJSONWasm is benchJSON in the wasip1 build under wazero: the guest
// prints the timings, and the host's peak RSS (guest memory, compiled
// code and all) replaces the guest's, which it cannot see.
func benchJSONWasm(wasm, path string, args []string, threads int, stdout, stderr io.Writer) error {
	var out bytes.Buffer
	if err := runUnderWasm(wasm, path, "bench", args, threads, nil, &out, stderr); err != nil {
		return err
	}
	var rep sideReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return fmt.Errorf("the wasm guest's output is not the benchmark's JSON: %w", err)
	}
	rep.MaxRSSBytes, _ = rss.Peak()
	return json.NewEncoder(stdout).Encode(rep)
}

// compareWasm runs `mode bench --json` natively and under wazero (the
// wasip1 build at wasm, its SIMD128 kernels loaded unless
// MODE_WASM_SIMD=off) on the same pack and thread count, a fresh process
// per side and run, interleaved, and prints the medians and the ratios
// wasm/native. A wasip1 guest is single-threaded: --threads N gives the
// wasm side N guests, the first and N-1 expert peers (wasm_peers.go),
// which split routed experts only.
func compareWasm(ctx context.Context, wasm, pack string, promptN, decode, threads, runs int, stdout, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	m, err := readManifest(ctx, pack)
	if err != nil {
		return err
	}
	ids := joinInts(benchPrompt(promptN, m.Model.Vocab))
	base := []string{"bench", "--json", "-m", pack, "--threads", strconv.Itoa(threads), "--prompt-ids", ids, "--decode-tokens", strconv.Itoa(decode)}
	var native, guest []sideRun
	var nativeRSS, guestRSS []int64
	for r := range runs {
		sides := []func() error{
			func() error {
				rep, err := runSide(ctx, self, base, stderr)
				native, nativeRSS = append(native, rep.Runs...), append(nativeRSS, rep.MaxRSSBytes)
				return err
			},
			func() error {
				rep, err := runSide(ctx, self, append(base, "--wasm", wasm), stderr)
				guest, guestRSS = append(guest, rep.Runs...), append(guestRSS, rep.MaxRSSBytes)
				return err
			},
		}
		if r%2 == 1 {
			slices.Reverse(sides)
		}
		for _, run := range sides {
			if err := run(); err != nil {
				return err
			}
		}
	}
	guests := wasmGuests(threads)
	fmt.Fprintf(stdout, "model %s (%s): prompt %d tokens, %d decoded; native %d threads, wasm (wazero) %d guests of 1 thread (%d expert peers); %d runs per side, interleaved, medians\n",
		pack, m.QuantSummary(), promptN, decode, threads, guests, guests-1, runs)
	np, nd := median(native, sideRun.prefillTPS), median(native, sideRun.decodeTPS)
	gp, gd := median(guest, sideRun.prefillTPS), median(guest, sideRun.decodeTPS)
	fmt.Fprintf(stdout, "%-10s %12s %12s %10s\n", "side", "prefill t/s", "decode t/s", "peak RSS")
	fmt.Fprintf(stdout, "%-10s %12.1f %12.2f %10s\n", "native", np, nd, mib(medianInt(nativeRSS)))
	fmt.Fprintf(stdout, "%-10s %12.1f %12.2f %10s\n", "wasm", gp, gd, mib(medianInt(guestRSS)))
	fmt.Fprintf(stdout, "%-10s %11.2fx %11.2fx\n", "wasm/nat", gp/np, gd/nd)
	same := len(native) > 0 && len(guest) > 0 && slices.Equal(native[0].Tokens, guest[0].Tokens)
	fmt.Fprintf(stdout, "greedy tokens equal: %v\n", same)
	return nil
}
