package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"

	goruntime "runtime"

	"github.com/moderuntime/mode/internal/progress"
	"github.com/moderuntime/mode/internal/wasmsimd"
	"github.com/moderuntime/mode/modelpack/hfrepo"
	"github.com/moderuntime/mode/modelpack/load"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/sample"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

var errUsage = errors.New("usage")

type runFlags struct {
	engineFlags
	prompt string
	wasm   string
	n      int
	ids    bool
	p      sample.Params
}

// engineFlags say how to open a model on an engine; run and chat share them.
type engineFlags struct {
	model, tok, backend, missing string
	hfEndpoint, quant            string
	threads, maxSeq              int
	budgetMB                     int64
	prefetch, kvF16              bool
}

func (f *engineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.model, "m", "", "model: pack directory or manifest URL, llama2.c checkpoint, HF directory, or hf:ORG/REPO[@REVISION] (required)")
	fs.StringVar(&f.hfEndpoint, "hf-endpoint", hfrepo.DefaultEndpoint, "the hub an hf: model is read from (files at ENDPOINT/ORG/REPO/resolve/REVISION/FILE)")
	fs.StringVar(&f.quant, "quant", "", "convert weights on load: source, f32, f16, q8_0, q4_0 or q4_k for routed experts, q8_0 for the rest with a 4-bit choice, as packs do (default: q4_0 for hf:, as stored otherwise; not for packs)")
	fs.StringVar(&f.tok, "z", "", "tokenizer file (default: found beside the model)")
	fs.StringVar(&f.backend, "backend", "cpu", "compute backend: cpu or webgpu (which the default pure-Go build runs through mode-webgpu, beside it or on PATH)")
	fs.IntVar(&f.threads, "threads", 0, "CPU threads (0: all cores); with --wasm, guests: the first and its expert peers")
	fs.IntVar(&f.maxSeq, "ctx", 0, "context length in tokens (0: the model's, at most 4096)")
	fs.StringVar(&f.missing, "missing", "exact", "a routed expert not loaded yet: exact waits for it, fast uses the best ready expert meanwhile")
	fs.BoolVar(&f.prefetch, "prefetch", true, "with a pack: predict the next layer's experts and fetch them early")
	fs.Int64Var(&f.budgetMB, "expert-budget", 0, "MiB of routed experts kept loaded, evicting the least recently used (0: no limit)")
	fs.BoolVar(&f.kvF16, "kv-f16", false, "keep the KV cache in f16 (half the memory, k and v rounded)")
}

// start opens the model and an engine for it; the caller closes the
// pack, when there is one, and then the backend.
func (f *engineFlags) start(ctx context.Context) (*engine.Engine, *load.Loaded, *loader.Pack, backend.Backend, error) {
	if f.maxSeq < 0 {
		return nil, nil, nil, nil, fmt.Errorf("--ctx %d: must be >= 0", f.maxSeq)
	}
	opts := engine.Options{MaxSeq: f.maxSeq, ExpertBudget: f.budgetMB << 20, Prefetch: f.prefetch, KVF16: f.kvF16}
	switch f.missing {
	case "exact":
	case "fast":
		opts.Missing = engine.MissingFast
	default:
		return nil, nil, nil, nil, fmt.Errorf("--missing %q: want exact or fast", f.missing)
	}
	ld, pk, err := f.open(ctx)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	b, err := newBackend(f.backend, f.threads)
	if err != nil {
		if pk != nil {
			pk.Close()
		}
		return nil, nil, nil, nil, err
	}
	if pk != nil {
		opts.Experts = pk
	}
	opts.ShareWeights = true // the loaded model is the engine's alone
	e, err := engine.New(b, ld.Model, opts)
	if err != nil {
		if pk != nil {
			pk.Close()
		}
		b.Close()
		return nil, nil, nil, nil, fmt.Errorf("%s: %w", f.model, err)
	}
	return e, ld, pk, b, nil
}

func parseRun(args []string, stderr io.Writer) (*runFlags, error) {
	fs := flag.NewFlagSet("mode run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &runFlags{}
	f.engineFlags.register(fs)
	fs.StringVar(&f.prompt, "p", "", "prompt text")
	fs.IntVar(&f.n, "n", 256, "number of tokens to generate (0: until the context is full)")
	fs.BoolVar(&f.ids, "ids", false, "print the generated token ids on the last line")
	fs.StringVar(&f.wasm, "wasm", "", "run the wasip1 build of mode (this file) under wazero instead; MODEL must be a pack")
	temp := fs.Float64("temp", 0, "temperature (0: greedy)")
	topP := fs.Float64("top-p", 0, "nucleus sampling threshold (0 or 1: off)")
	topK := fs.Int("top-k", 0, "keep the k most likely tokens (0: off)")
	minP := fs.Float64("min-p", 0, "drop tokens below min-p times the top probability (0: off)")
	rep := fs.Float64("repeat-penalty", 0, "repetition penalty (0 or 1: off)")
	fs.IntVar(&f.p.RepeatWindow, "repeat-window", 64, "ids the repetition penalty looks back at")
	seed := fs.Uint64("seed", 0, "sampling seed")
	if err := parseCommand(fs, args, &f.model, &f.n, stderr); err != nil {
		return nil, err
	}
	f.p.Temperature, f.p.TopP, f.p.TopK, f.p.MinP = float32(*temp), float32(*topP), *topK, float32(*minP)
	f.p.RepetitionPenalty, f.p.Seed = float32(*rep), *seed
	if err := f.p.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

func newBackend(name string, threads int) (backend.Backend, error) {
	switch name {
	case "cpu":
		b := cpu.New(cpu.Options{Threads: poolThreads(threads)})
		if ps := guestPeers(); len(ps) > 0 {
			b.SetPeers(ps)
		}
		return b, nil
	case "webgpu":
		return openWebGPU() // backend_webgpu.go in mode-webgpu
	}
	return nil, fmt.Errorf("--backend %q: want cpu or webgpu", name)
}

// parseCommand parses args into fs and checks what run and chat share: no
// positional arguments, a model (the -m flag's value once parsed, so model
// points at it), and -n (n) not negative.
func parseCommand(fs *flag.FlagSet, args []string, model *string, n *int, stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	if *model == "" {
		fmt.Fprintf(stderr, "%s: -m MODEL is required\n", fs.Name())
		fs.Usage()
		return errUsage
	}
	if *n < 0 {
		return fmt.Errorf("-n %d: must be >= 0", *n)
	}
	return nil
}

// runUnderWasm runs the subcommand cmd with args, less --wasm, in the
// wasip1 build of mode at wasm under wazero, on threads guests (the
// first and its expert peers; 0: one per core); the model must be a pack.
func runUnderWasm(wasm, model, cmd string, args []string, threads int, stdin io.Reader, stdout, stderr io.Writer) error {
	if !isPack(model) {
		return fmt.Errorf("--wasm runs packs: make one with `modelpack import %s -o PACKDIR`", model)
	}
	code, err := runWasm(context.Background(), wasm, append([]string{cmd}, withoutFlag(args, "wasm")...), threads, stdin, stdout, stderr)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	f, err := parseRun(args, stderr)
	if err != nil {
		return err
	}
	if f.wasm != "" {
		return runUnderWasm(f.wasm, f.model, "run", args, f.threads, nil, stdout, stderr)
	}
	if f.backend == "webgpu" && forwardsWebGPU {
		return forwardWebGPU("run", args, nil, stdout, stderr) // backend_forward.go
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	e, ld, pk, b, err := f.start(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	if pk != nil {
		defer pk.Close() // before the backend: no fetch outlives the engine
	}
	prompt := ld.Tokenizer.Encode(f.prompt)
	if ld.AddBOS {
		prompt = append([]int{ld.Model.Config.BOS}, prompt...)
	}
	if len(prompt) == 0 {
		return errors.New("empty prompt and the model has no BOS token to start from: give -p")
	}
	if len(prompt) >= e.MaxSeq() {
		return fmt.Errorf("prompt is %d tokens; the context holds %d", len(prompt), e.MaxSeq())
	}
	smp, err := sample.New(f.p)
	if err != nil {
		return err
	}
	stream := ld.Tokenizer.NewStream()
	if a, ok := ld.Tokenizer.(interface{ NewStreamAfter(int) *tokenizer.Stream }); ok {
		// decode in the prompt's context (run.c strips the space after BOS)
		stream = a.NewStreamAfter(prompt[len(prompt)-1])
	}
	var ids []string
	_, err = e.Generate(ctx, prompt, engine.GenerateOptions{MaxTokens: f.n, Sampler: smp}, func(id int) error {
		ids = append(ids, strconv.Itoa(id))
		_, err := io.WriteString(stdout, stream.Push(id))
		return err
	})
	io.WriteString(stdout, stream.Flush()+"\n")
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if pk != nil {
		ps, es := pk.Stats(), e.Stats()
		fmt.Fprintf(stderr, "fetched %s in %d shards; experts fetched %d of %d (%s of %s expert bytes); expert cache hit rate %.1f%%, %d evictions; prefetched %d, %d used; %d substitutions\n",
			progress.Bytes(ps.Bytes), ps.Shards, ps.ExpertFetches, ps.TotalExperts, progress.Bytes(ps.ExpertBytes),
			progress.Bytes(expertBytes(pk)), 100*es.HitRate(), es.ExpertEvictions, ps.Prefetched, ps.PrefetchHits, es.Substitutions)
	}
	if goruntime.GOARCH == "wasm" {
		// which kernels the guest ran: the host's SIMD128 ones or pure Go
		_, note := wasmsimd.Ready()
		fmt.Fprintf(stderr, "kernels: %s\n", note)
		if cb, ok := b.(*cpu.Backend); ok {
			fmt.Fprintf(stderr, "guests: %d (this one and its expert peers); %d routed experts split between them\n",
				len(guestPeers())+1, cb.SplitExperts())
		}
	}
	if f.ids {
		fmt.Fprintln(stdout, strings.Join(ids, " "))
	}
	return nil
}

// withoutFlag drops -name/--name VALUE (or =VALUE) from args.
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if a == name && len(args[i]) > len(a) {
			i++ // its value
			continue
		}
		if strings.HasPrefix(a, name+"=") && len(args[i]) > len(a) {
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// exitCode is a guest's non-zero exit status, passed on as ours.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("the wasm guest exited with status %d", int(e)) }

// open loads -m: an hf: repository or a pack lazily, anything else
// through modelpack/load, converted as --quant says.
func (f *engineFlags) open(ctx context.Context) (*load.Loaded, *loader.Pack, error) {
	quant := hfrepo.Quant{}
	if f.quant != "" {
		q, err := hfrepo.ParseQuant(f.quant)
		if err != nil {
			return nil, nil, fmt.Errorf("--quant: %w", err)
		}
		quant = q
	}
	if hfrepo.IsLocation(f.model) {
		loc, err := hfrepo.ParseLocation(f.model)
		if err != nil {
			return nil, nil, err
		}
		if f.tok != "" {
			return nil, nil, errors.New("-z does not apply to an hf: repository: its tokenizer.json is used")
		}
		if f.quant == "" {
			quant = hfrepo.DefaultQuant
		}
		pk, _, err := hfrepo.Open(ctx, loc, hfrepo.Options{Endpoint: f.hfEndpoint, Quant: quant})
		if err != nil {
			return nil, nil, err
		}
		return &load.Loaded{Model: pk.Model, Tokenizer: pk.Tokenizer, AddBOS: pk.AddBOS, ChatTemplate: pk.Manifest.ChatTemplate}, pk, nil
	}
	if f.quant != "" && isPack(f.model) {
		return nil, nil, errors.New("--quant does not apply to a pack: its formats were chosen at import")
	}
	ld, pk, err := open(ctx, f.model, f.tok)
	if err != nil || f.quant == "" {
		return ld, pk, err
	}
	if conv := quant.Converter(ld.Model.Config); conv != nil {
		for name, t := range ld.Model.Weights {
			c, err := conv(t)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: tensor %s: %w", f.model, name, err)
			}
			ld.Model.Weights[name] = c
		}
	}
	return ld, pk, nil
}

// open loads MODEL: a pack (directory with manifest.json, a manifest path
// or an http(s) URL) lazily, anything else through modelpack/load.
func open(ctx context.Context, path, tok string) (*load.Loaded, *loader.Pack, error) {
	if isPack(path) {
		if tok != "" {
			return nil, nil, errors.New("-z does not apply to a pack: its tokenizer is in the manifest")
		}
		pk, err := loader.Open(ctx, path, shard.HTTPOptions{})
		if err != nil {
			return nil, nil, err
		}
		return &load.Loaded{Model: pk.Model, Tokenizer: pk.Tokenizer, AddBOS: pk.AddBOS, ChatTemplate: pk.Manifest.ChatTemplate}, pk, nil
	}
	ld, err := load.Open(path, tok)
	return ld, nil, err
}

func isPack(path string) bool {
	if goruntime.GOOS == "wasip1" {
		return true // the guest sees no files: the host opens the pack
	}
	return load.IsPack(path)
}

func expertBytes(pk *loader.Pack) int64 {
	var n int64
	for _, s := range pk.Manifest.Shards {
		if s.Kind == "expert" {
			n += s.Size
		}
	}
	return n
}
