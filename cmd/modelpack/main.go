package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moderuntime/mode/internal/progress"
	"github.com/moderuntime/mode/internal/rss"
	"github.com/moderuntime/mode/modelpack/gguf"
	"github.com/moderuntime/mode/modelpack/gptq"
	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/load"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `modelpack makes and checks MoDE packs.

Usage:
  modelpack import SRC -o PACKDIR [--quant f32|f16|q8_0|q4_0|q4_k] [--dense-quant F] [--max-shard 64MiB] [-z TOKENIZER] [--force]
  modelpack distill SRC -o PACKDIR --experts 8 --top-k 4 [--balanced] [--shared N] [--calib FILE | --self-generate N] [--seed S] [--train-steps N ...] [--report FILE]
  modelpack compare TEACHER STUDENT (--self-generate N [--seed S] | --calib FILE) [--json FILE]
  modelpack pareto [-md FILE] [-svg FILE] REPORT.json...   (quality per FLOP of distill reports; scripts/distill-sweep.sh)
  modelpack synth --arch {llama,mixtral,qwen2_moe,qwen3_moe,olmoe,granitemoe,granitemoeshared,gpt_oss,deepseek_v2,deepseek_v3,deepseek2,mode} [--seed N] [sizes...] [--dtype bf16] [--files N] -o DIR
  modelpack synth --arch {llama,mixtral,olmoe,granitemoe,granitemoeshared,gpt_oss} [--seed N] [sizes...] --gguf FILE [--gguf-type f32|f16|q8_0|q4_0|q4_k]
  modelpack index SRC -o manifest.json [--base-url URL]
  modelpack verify PACKDIR|MANIFEST|URL
  modelpack inspect PACKDIR|MANIFEST|URL

SRC is an HF model directory, a GGUF file or a llama2.c checkpoint; import
also takes a pack directory (loaded whole), to store a pack in other formats.
`

var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func([]string, io.Writer, io.Writer) error{
		"import": cmdImport, "synth": cmdSynth, "distill": cmdDistill, "verify": cmdVerify, "inspect": cmdInspect, "index": cmdIndex,
		"compare": cmdCompare, "pareto": cmdPareto,
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "modelpack: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	err := cmd(args[1:], stdout, stderr)
	switch {
	case err == errUsage:
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "modelpack %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suf string
		mul int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suf) {
			var n int64
			if _, err := fmt.Sscanf(strings.TrimSuffix(s, u.suf), "%d", &n); err != nil || n <= 0 {
				return 0, fmt.Errorf("size %q: want a positive number with an optional unit (KiB, MiB, GiB)", s)
			}
			return n * u.mul, nil
		}
	}
	return 0, fmt.Errorf("size %q", s)
}

// packFormat parses a weight format flag and checks that packs store it.
func packFormat(flag, val string) (tensor.DType, error) {
	d, err := tensor.ParseDType(val)
	if err != nil {
		return d, fmt.Errorf("%s: %w", flag, err)
	}
	if err := pack.CheckFormat(d); err != nil {
		return d, fmt.Errorf("%s: %w", flag, err)
	}
	return d, nil
}

func cmdImport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("modelpack import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "output pack directory (required)")
	quant := fs.String("quant", "", "weight format: f32, f16, q8_0, q4_0, q4_k (default: a GGUF's own formats, f16 for other sources)")
	denseQuant := fs.String("dense-quant", "", "MoE models: format of the matrices every token uses (attention, shared experts, embeddings); routed experts use --quant (default: q8_0 when --quant is 4-bit, else --quant)")
	embedQuant := fs.String("embed-quant", "", "format of an untied embedding table (default: the dense format); q8_0 makes 4-bit packs more faithful for a larger core shard")
	maxShard := fs.String("max-shard", "64MiB", "largest shard")
	tok := fs.String("z", "", "tokenizer file (default: found beside the model)")
	force := fs.Bool("force", false, "replace an existing pack at -o")
	stats := fs.Bool("stats", false, "print throughput and peak RSS")
	calib := fs.String("calib", "", "GPTQ: round q8_0/q4_0/q4_k matrices so their errors cancel on this calibration text (loads the model whole)")
	calibSelf := fs.Int("calib-self", 0, "GPTQ: calibrate on this many sequences sampled from the model itself")
	calibLen := fs.Int("calib-len", 128, "GPTQ: tokens per calibration sequence")
	seed := fs.Uint64("seed", 1, "GPTQ: sampling seed for --calib-self")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		fmt.Fprintln(stderr, "usage: modelpack import SRC -o PACKDIR [flags]")
		fs.PrintDefaults()
		return errUsage
	}
	q := tensor.Invalid // keep the source's formats
	if *quant != "" {
		if q, err = packFormat("--quant", *quant); err != nil {
			return err
		}
	}
	var dq, eq tensor.DType
	for _, f := range []struct {
		flag string
		val  string
		d    *tensor.DType
	}{{"--dense-quant", *denseQuant, &dq}, {"--embed-quant", *embedQuant, &eq}} {
		if f.val == "" {
			continue
		}
		if *f.d, err = packFormat(f.flag, f.val); err != nil {
			return err
		}
		if q == tensor.Invalid {
			return fmt.Errorf("%s needs --quant", f.flag)
		}
	}
	cap, err := parseSize(*maxShard)
	if err != nil {
		return fmt.Errorf("--max-shard: %w", err)
	}
	in, err := importer.Open(pos[0], *tok)
	if err != nil {
		return err
	}
	defer in.Close()
	if q == tensor.Invalid && in.Kind != "gguf" {
		// Only a GGUF source has formats worth keeping; safetensors and
		// llama2.c checkpoints are f32, bf16 or f16 dumps.
		q = tensor.F16
	}
	start := time.Now()
	o := pack.Options{Quant: q, DenseQuant: dq, EmbedQuant: eq, MaxShard: cap, Force: *force,
		Logf: func(format string, args ...any) { fmt.Fprintf(stderr, "modelpack import: "+format+"\n", args...) }}
	if *calib != "" || *calibSelf != 0 {
		if *calib != "" && *calibSelf != 0 {
			return fmt.Errorf("give one of --calib FILE and --calib-self N")
		}
		if *calibSelf < 0 || *calibLen < 2 {
			return fmt.Errorf("--calib-self %d --calib-len %d: want a positive count and at least 2 tokens", *calibSelf, *calibLen)
		}
		if tensor.BlockSize(q) <= 1 {
			return fmt.Errorf("--calib and --calib-self quantise with GPTQ: they need --quant q8_0, q4_0 or q4_k")
		}
		src, err := load.Model(in.Source)
		if err != nil {
			return err
		}
		seqs, err := calibration(inputTokenizer(in, src.Config.Vocab), src, *calib, *calibSelf, *calibLen, *seed, 0, stderr)
		if err != nil {
			return err
		}
		st, err := gptq.Collect(context.Background(), src, seqs, 0)
		if err != nil {
			return err
		}
		n := 0
		for _, s := range seqs {
			n += len(s)
		}
		fmt.Fprintf(stderr, "GPTQ: input statistics of %d matrices from %d calibration tokens in %v\n", len(st.Names()), n, time.Since(start).Round(time.Millisecond))
		o.Quantizer = st.Quantizer(0)
	}
	pr := progress.New(stderr, "import "+pos[0])
	o.Progress = pr.Update
	m, err := pack.Write(*out, in.Source, in.Tokenizer, in.ChatTemplate, o)
	pr.Finish()
	if err != nil {
		return err
	}
	var bytes int64
	experts := 0
	for _, s := range m.Shards {
		bytes += s.Size
		if s.Kind == "expert" {
			experts++
		}
	}
	fmt.Fprintf(stdout, "wrote %s: %d shards (%d expert shards), %s, quant %s\n", *out, len(m.Shards), experts, progress.Bytes(bytes), m.QuantSummary())
	if *stats {
		in := sourceBytes(pos[0])
		el := time.Since(start)
		peak, _ := rss.Peak()
		fmt.Fprintf(stdout, "import: %s of source in %v: %.1f MB/s; peak RSS %s\n", progress.Bytes(in), el.Round(time.Millisecond),
			float64(in)/1e6/el.Seconds(), progress.Bytes(peak))
	}
	return nil
}

// sourceBytes is the size of a model file, or of a directory's files.
func sourceBytes(path string) int64 {
	var n int64
	filepath.WalkDir(path, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func cmdVerify(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: modelpack verify PACKDIR|MANIFEST|URL")
		return errUsage
	}
	var m *manifest.Manifest
	var errs []error
	if st, err := os.Stat(args[0]); err == nil && st.IsDir() {
		m, errs = pack.Verify(args[0])
	} else {
		m, errs = pack.VerifyRemote(context.Background(), args[0], shard.HTTPOptions{})
	}
	for _, e := range errs {
		fmt.Fprintln(stderr, e)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %d problem(s)", args[0], len(errs))
	}
	fmt.Fprintf(stdout, "%s: ok (%d shards, manifest version %d)\n", args[0], len(m.Shards), m.Version)
	return nil
}

func cmdInspect(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: modelpack inspect PACKDIR|MANIFEST|URL")
		return errUsage
	}
	_, b, err := shard.ReadManifest(context.Background(), args[0], shard.HTTPOptions{})
	if err != nil {
		return err
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	return pack.Inspect(stdout, m)
}

func cmdIndex(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("modelpack index", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "manifest to write (required)")
	base := fs.String("base-url", "", "URL the manifest points pieces at (default: SRC when it is a URL, else file names relative to the manifest)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		fmt.Fprintln(stderr, "usage: modelpack index SRC -o manifest.json [--base-url URL]")
		return errUsage
	}
	src := pos[0]
	var s shard.Source
	b := *base
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		if !strings.HasSuffix(src, "/") {
			src += "/"
		}
		h, err := shard.NewHTTP(src, shard.HTTPOptions{})
		if err != nil {
			return err
		}
		s = h
		if b == "" {
			b = src
		}
	} else {
		s = shard.NewDir(src)
		if b == "" {
			absOut, _ := filepath.Abs(filepath.Dir(*out))
			absSrc, _ := filepath.Abs(src)
			if absOut != absSrc {
				return fmt.Errorf("without --base-url the manifest must be written into %s (its pieces name files relative to it)", src)
			}
		}
	}
	if b != "" && !strings.HasSuffix(b, "/") {
		b += "/"
	}
	pr := progress.New(stderr, "index "+pos[0])
	m, err := pack.Index(context.Background(), s, pack.IndexOptions{Base: b, Progress: pr.Update})
	pr.Finish()
	if err != nil {
		return err
	}
	data, err := manifest.Marshal(m)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(*out, data); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d shards pointing into %s\n", *out, len(m.Shards), pos[0])
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so an interrupted write never leaves half a manifest.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func cmdSynth(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("modelpack synth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	arch := fs.String("arch", "", "family: "+strings.Join(synth.Arches(), ", ")+" (required)")
	out := fs.String("o", "", "output directory (required)")
	seed := fs.Uint64("seed", 1, "random seed")
	dim := fs.Int("dim", 0, "hidden size (0: the family's small default)")
	layers := fs.Int("layers", 0, "layers")
	heads := fs.Int("heads", 0, "attention heads")
	kvHeads := fs.Int("kv-heads", 0, "key/value heads")
	ffn := fs.Int("ffn", 0, "FFN width (mixtral, olmoe, granitemoe: each routed expert's)")
	expertFFN := fs.Int("expert-ffn", 0, "routed expert width (qwen2_moe, qwen3_moe, deepseek_v2, deepseek_v3)")
	experts := fs.Int("experts", 0, "routed experts per layer")
	topK := fs.Int("top-k", 0, "experts per token")
	shared := fs.Int("shared-ffn", 0, "shared expert width (qwen2_moe, granitemoeshared, mode; deepseek: a multiple of --expert-ffn)")
	widths := fs.String("expert-widths", "", "mode: comma-separated per-expert widths, e.g. 32,96,64,16")
	vocab := fs.Int("vocab", 0, "vocabulary size")
	maxSeq := fs.Int("max-seq", 0, "context length")
	dtype := fs.String("dtype", "f32", "stored format: f32, f16, bf16")
	files := fs.Int("files", 0, "split the weights into this many safetensors files with model.safetensors.index.json (0 or 1: one model.safetensors)")
	maxShard := fs.Int64("max-shard-bytes", 0, "split the weights into safetensors files of at most this many bytes (0: no limit)")
	window := fs.Int("window", 0, "gpt_oss: sliding_window of the even layers")
	mxfp4 := fs.Bool("mxfp4", true, "gpt_oss: store the experts as MXFP4 blocks and scales, as OpenAI releases them (false: dequantised in --dtype)")
	ggufOut := fs.String("gguf", "", "write a GGUF file llama.cpp loads instead of an HF directory (llama, mixtral, olmoe, granitemoe, granitemoeshared, gpt_oss)")
	ggufType := fs.String("gguf-type", "f32", "--gguf: format of every matrix: f32, f16, q8_0, q4_0, q4_k (with q4_0 for rows that are not whole 256-element super-blocks)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *arch == "" || (*out == "") == (*ggufOut == "") {
		fmt.Fprintln(stderr, "usage: modelpack synth --arch ARCH (-o DIR | --gguf FILE) [flags]")
		fs.PrintDefaults()
		return errUsage
	}
	if *arch == "deepseek2" {
		// llama.cpp's name for the family: the variant with every part
		// (q bottleneck, noaux_tc routing with its bias)
		*arch = "deepseek_v3"
	}
	o := synth.Default(*arch)
	o.Arch, o.Seed = *arch, *seed
	set := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	set(&o.Dim, *dim)
	set(&o.Layers, *layers)
	set(&o.Heads, *heads)
	set(&o.KVHeads, *kvHeads)
	set(&o.FFN, *ffn)
	set(&o.ExpertFFN, *expertFFN)
	set(&o.Experts, *experts)
	set(&o.TopK, *topK)
	set(&o.SharedFFN, *shared)
	set(&o.Vocab, *vocab)
	set(&o.MaxSeq, *maxSeq)
	o.Files, o.MaxShardBytes = *files, *maxShard
	set(&o.Window, *window)
	if o.Arch == "gpt_oss" {
		o.MXFP4 = *mxfp4
	}
	if *widths != "" {
		o.ExpertWidths = nil
		for _, w := range strings.Split(*widths, ",") {
			var n int
			if _, err := fmt.Sscanf(strings.TrimSpace(w), "%d", &n); err != nil || n <= 0 {
				return fmt.Errorf("--expert-widths: %q is not a positive width", w)
			}
			o.ExpertWidths = append(o.ExpertWidths, n)
		}
	}
	if o.DType, err = tensor.ParseDType(*dtype); err != nil {
		return fmt.Errorf("--dtype: %w", err)
	}
	if *ggufOut != "" {
		typ, ok := map[string]gguf.GGMLType{"f32": gguf.TypeF32, "f16": gguf.TypeF16, "q8_0": gguf.TypeQ8_0, "q4_0": gguf.TypeQ4_0, "q4_k": gguf.TypeQ4_K}[*ggufType]
		if !ok {
			return fmt.Errorf("--gguf-type %q: want f32, f16, q8_0, q4_0 or q4_k", *ggufType)
		}
		if err := synth.WriteGGUF(*ggufOut, o, typ); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s model to %s (%s)\n", *arch, *ggufOut, typ)
		return nil
	}
	if err := synth.Write(*out, o); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s model to %s\n", *arch, *out)
	return nil
}
