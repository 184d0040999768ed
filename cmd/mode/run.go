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
	model, tok, prompt, backend string
	wasm                        string
	n, threads                  int
	budgetMB                    int64
	prefetch, kvF16             bool
	missing                     string
	ids                         bool
	p                           sample.Params
}

func parseRun(args []string, stderr io.Writer) (*runFlags, error) {
	fs := flag.NewFlagSet("mode run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &runFlags{}
	fs.StringVar(&f.model, "m", "", "model: pack directory or manifest URL, llama2.c checkpoint, or HF directory (required)")
	fs.StringVar(&f.tok, "z", "", "tokenizer file (default: found beside the model)")
	fs.StringVar(&f.prompt, "p", "", "prompt text")
	fs.IntVar(&f.n, "n", 256, "number of tokens to generate (0: until the context is full)")
	fs.StringVar(&f.backend, "backend", "cpu", "compute backend: cpu or webgpu")
	fs.IntVar(&f.threads, "threads", 0, "CPU threads (0: all cores)")
	fs.StringVar(&f.missing, "missing", "exact", "a routed expert not loaded yet: exact waits for it, fast uses the best ready expert meanwhile")
	fs.BoolVar(&f.prefetch, "prefetch", true, "with a pack: predict the next layer's experts and fetch them early")
	fs.Int64Var(&f.budgetMB, "expert-budget", 0, "MiB of routed experts kept loaded, evicting the least recently used (0: no limit)")
	fs.BoolVar(&f.kvF16, "kv-f16", false, "keep the KV cache in f16 (half the memory, k and v rounded)")
	fs.BoolVar(&f.ids, "ids", false, "print the generated token ids on the last line")
	fs.StringVar(&f.wasm, "wasm", "", "run the wasip1 build of mode (this file) under wazero instead; MODEL must be a pack")
	temp := fs.Float64("temp", 0, "temperature (0: greedy)")
	topP := fs.Float64("top-p", 0, "nucleus sampling threshold (0 or 1: off)")
	topK := fs.Int("top-k", 0, "keep the k most likely tokens (0: off)")
	minP := fs.Float64("min-p", 0, "drop tokens below min-p times the top probability (0: off)")
	rep := fs.Float64("repeat-penalty", 0, "repetition penalty (0 or 1: off)")
	fs.IntVar(&f.p.RepeatWindow, "repeat-window", 64, "ids the repetition penalty looks back at")
	seed := fs.Uint64("seed", 0, "sampling seed")
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mode run: unexpected argument %q\n", fs.Arg(0))
		return nil, errUsage
	}
	if f.model == "" {
		fmt.Fprintln(stderr, "mode run: -m MODEL is required")
		fs.Usage()
		return nil, errUsage
	}
	if f.n < 0 {
		return nil, fmt.Errorf("-n %d: must be >= 0", f.n)
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
		return cpu.New(cpu.Options{Threads: threads}), nil
	case "webgpu":
		return openWebGPU() // backend_webgpu.go; not in wasm builds
	}
	return nil, fmt.Errorf("--backend %q: want cpu or webgpu", name)
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	f, err := parseRun(args, stderr)
	if err != nil {
		return err
	}
	if f.wasm != "" {
		if !isPack(f.model) {
			return fmt.Errorf("--wasm runs packs: make one with `modelpack import %s -o PACKDIR`", f.model)
		}
		code, err := runWasm(context.Background(), f.wasm, append([]string{"run"}, withoutFlag(args, "wasm")...), stdout, stderr)
		if err != nil {
			return err
		}
		if code != 0 {
			return exitCode(code)
		}
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ld, pk, err := open(ctx, f.model, f.tok)
	if err != nil {
		return err
	}
	b, err := newBackend(f.backend, f.threads)
	if err != nil {
		return err
	}
	defer b.Close()
	opts := engine.Options{ExpertBudget: f.budgetMB << 20, Prefetch: f.prefetch, KVF16: f.kvF16}
	switch f.missing {
	case "exact":
	case "fast":
		opts.Missing = engine.MissingFast
	default:
		return fmt.Errorf("--missing %q: want exact or fast", f.missing)
	}
	if pk != nil {
		opts.Experts = pk
	}
	e, err := engine.New(b, ld.Model, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", f.model, err)
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
