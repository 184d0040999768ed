package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moderuntime/mode/modelpack/distill"
	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/load"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

func cmdDistill(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("modelpack distill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "output pack directory (required)")
	tok := fs.String("z", "", "tokenizer file (default: found beside the model)")
	quant := fs.String("quant", "f32", "weight format: f32, f16, q8_0, q4_0, q4_k")
	denseQuant := fs.String("dense-quant", "", "format of the matrices every token uses (attention, shared expert, embeddings); routed experts use --quant (default: q8_0 when --quant is 4-bit, else --quant)")
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
	refit := fs.Int("refit", 0, "least-squares refits of the down projections per layer, alternating with router refits (0: none)")
	sequential := fs.Bool("sequential", false, "fit each layer's router and refit on the partly distilled student's hidden states")
	refitTarget := fs.String("refit-target", "local", "what a refitted layer reproduces: local (the dense FFN on the same inputs) or residual (the teacher's residual stream; needs --sequential)")
	ridge := fs.Float64("refit-ridge", 1e-3, "ridge of the refit towards the teacher's down columns, relative to the mean activation energy")
	expertAct := fs.String("expert-act", "", "activation per routed expert index, comma-separated (silu, gelu_tanh, relu2; one value: every expert; default silu)")
	expertDepth := fs.String("expert-depth", "", "blocks per routed expert index, comma-separated (one value: every expert; default 1); added blocks start at zero")
	deepen := fs.Int("deepen", 0, "give a second block to the N experts of each layer with the highest reconstruction error after clustering and refit (starts at zero: train with --train-experts)")
	deepenWidth := fs.Int("deepen-width", 0, "width of each added block (0: its expert's width)")
	tinyExperts := fs.Int("tiny-experts", 0, "add K tiny experts per layer to the routed pool (compute-adaptive routing: set --top-k above the real experts' budget)")
	tinyWidth := fs.Int("tiny-width", 1, "neurons of each tiny expert (they start contributing zero)")
	tinyBudget := fs.Float64("tiny-budget", 0, "mean real experts per token the tiny experts' router thresholds are initialised for (0: top-k minus tiny experts, at least 1)")
	computeW := fs.Float64("compute-weight", 0, "weight of the compute-aware router loss: mean over tokens of sum_e p(e|token)·cost(e)/mean cost, router softmax at --aux-logit-scale")
	computeTarget := fs.Float64("compute-target", 0, "hold the mean routed neurons per token and layer at this: --compute-weight becomes the start of a multiplier moved by --compute-rate×(routed/target−1) after each step (0: fixed weight)")
	computeRate := fs.Float64("compute-rate", 1e-4, "step of the compute multiplier (see --compute-target)")
	tinyControl := fs.Float64("tiny-control", 0, "fine-tuning: hold each layer's mean real experts per token at --tiny-budget by moving the tiny experts' threshold by this gain per step (0: off; the tiny router rows are then not trained)")
	steps := fs.Int("train-steps", 0, "fine-tuning steps (0: none)")
	lr := fs.Float64("lr", 1e-3, "fine-tuning learning rate")
	cosine := fs.Bool("cosine", false, "decay the learning rate to 0 on a cosine (after a 5% warm-up)")
	lm := fs.Float64("lm-weight", 1, "weight of the next-token cross-entropy on the training text (0: KL to the teacher only)")
	kl := fs.Float64("kl-weight", 1, "weight of KL(teacher||student)")
	argmaxW := fs.Float64("argmax-weight", 0, "weight of the cross-entropy of the teacher's most likely next token (trains greedy agreement directly)")
	lb := fs.Float64("lb-weight", 0.01, "weight of the load-balancing loss")
	z := fs.Float64("z-weight", 0.001, "weight of the router z-loss")
	auxScale := fs.Float64("aux-logit-scale", 0, "multiply the router logits the load-balancing and z-losses see by this (0: 1); fitted routers' logits are at most 1e-4, at which both losses are constants: 1e4 makes them measure the routing")
	trainExperts := fs.Bool("train-experts", false, "also fine-tune the experts")
	trainAll := fs.Bool("train-all", false, "fine-tune every weight: routers, experts, attention, norms, embeddings and head")
	routerLR := fs.Float64("router-lr", 0, "routers' learning rate relative to their initial RMS weight (0: --lr like the rest; negative: freeze the routers)")
	denseRouter := fs.Bool("router-dense", false, "fine-tuning: run every expert on every token so routers also learn from the experts they did not select (slower steps)")
	emaDecay := fs.Float64("ema", 0, "store an exponential moving average of the fine-tuned weights with this decay per step (e.g. 0.999; 0: the last step's weights)")
	ecLayers := fs.Int("expert-choice-layers", 0, "fine-tuning: route the first N layers by expert choice (each expert takes its top tokens of each sequence); inference routes by token choice")
	ecAux := fs.Float64("expert-choice-aux", 0, "weight of the token-choice auxiliary loss of the expert-choice layers (router softmax, at --aux-logit-scale, against the experts that took each token)")
	ecAnneal := fs.Float64("expert-choice-anneal", 0, "fraction of the last fine-tuning steps routed by token choice everywhere (hand-over to inference routing)")
	expertClip := fs.Float64("expert-clip", 0, "clip each expert's gradient norm to this, separately per expert (0: no clip; needs --train-experts or --train-all)")
	batch := fs.Int("batch", 8, "sequences per fine-tuning step")
	fresh := fs.Int("fresh", 0, "fine-tune on this many new sequences sampled from the teacher (disjoint from the held-out ones) instead of the calibration sequences")
	report := fs.String("report", "", "report JSON file (default: PACKDIR/distill-report.json)")
	threads := fs.Int("threads", 0, "goroutines (0: all cores)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		fmt.Fprintln(stderr, "usage: modelpack distill SRC -o PACKDIR --experts 8 --top-k 4 [--balanced] [--shared N] [--calib FILE | --self-generate N] [flags]")
		fmt.Fprint(stderr, `
Steps: cluster each FFN's neurons into experts, fit a router per layer,
optionally refit routers and down projections in closed form (--refit,
--sequential), optionally fine-tune (--train-steps), evaluate on the
held-out sequences and write the pack with distill-report.json.

Recommended fine-tuning (see docs/distill-stories260K.md): KL to the
teacher on fresh teacher samples, everything trained, routers at a step
relative to their size:
  --refit 1 --sequential --train-steps 2400 --lr 3e-3 --cosine --lm-weight 0
  --argmax-weight 0.3 --router-lr 0.01 --train-all --fresh 19200
The report's held-out set is small (--holdout of the calibration sample);
check a student on more text with modelpack compare TEACHER PACKDIR
--self-generate 200 --seed S.

`)
		fs.PrintDefaults()
		return errUsage
	}
	if (*calib == "") == (*selfGen == 0) {
		return fmt.Errorf("give exactly one of --calib FILE and --self-generate N")
	}
	var target distill.RefitTarget
	switch *refitTarget {
	case "local":
		target = distill.RefitLocal
	case "residual":
		target = distill.RefitResidual
	default:
		return fmt.Errorf("--refit-target %q: want local or residual", *refitTarget)
	}
	arch, err := archOptions(*expertAct, *expertDepth, *experts)
	if err != nil {
		return err
	}
	arch.Deepen, arch.Width = *deepen, *deepenWidth
	q, err := packFormat("--quant", *quant)
	if err != nil {
		return err
	}
	var dq tensor.DType
	if *denseQuant != "" {
		if dq, err = packFormat("--dense-quant", *denseQuant); err != nil {
			return err
		}
	}
	in, err := importer.Open(pos[0], *tok)
	if err != nil {
		return err
	}
	defer in.Close()
	teacher, err := load.Model(in.Source)
	if err != nil {
		return err
	}
	seqs, err := calibration(inputTokenizer(in, teacher.Config.Vocab), teacher, *calib, *selfGen, *seqLen, *seed, *threads, stderr)
	if err != nil {
		return err
	}
	train, held, err := distill.Split(seqs, *holdout)
	if err != nil {
		return fmt.Errorf("calibration data: %w", err)
	}
	var trainTiny [2]float64 // budget and gain of the tiny threshold control
	if *tinyControl > 0 {
		if *tinyExperts == 0 {
			return fmt.Errorf("--tiny-control needs --tiny-experts")
		}
		b := *tinyBudget
		if b == 0 {
			b = float64(max(1, *topK-*tinyExperts))
		}
		trainTiny = [2]float64{b, *tinyControl}
	}
	student, rep, err := distill.Distill(teacher, train, held, distill.Options{
		Experts: *experts, TopK: *topK, Balanced: *balanced, Shared: *shared, Seed: *seed, WeightsOnly: *weightsOnly,
		Refit: distill.RefitOptions{Iters: *refit, Sequential: *sequential, Target: target, Ridge: *ridge},
		Arch:  arch,
		Tiny:  distill.TinyOptions{Experts: *tinyExperts, Width: *tinyWidth, Budget: *tinyBudget},
		Train: distill.TrainOptions{Steps: *steps, LR: *lr, Cosine: *cosine, LMWeight: *lm, KLWeight: *kl, ArgmaxWeight: *argmaxW, LBWeight: *lb, ZWeight: *z, AuxLogitScale: *auxScale,
			Experts: *trainExperts, All: *trainAll, RouterLR: *routerLR, Batch: *batch, Fresh: *fresh, EMA: *emaDecay, DenseRouter: *denseRouter,
			ExpertChoiceLayers: *ecLayers, ExpertChoiceAux: *ecAux, ExpertChoiceAnneal: *ecAnneal, ExpertClip: *expertClip, ComputeWeight: *computeW, ComputeTarget: *computeTarget, ComputeRate: *computeRate,
			TinyBudget: trainTiny[0], TinyGain: trainTiny[1]},
		Threads: *threads, Log: stderr,
	})
	if err != nil {
		return err
	}
	if _, err := pack.Write(*out, pack.ModelSource{M: student}, in.Tokenizer, in.ChatTemplate, pack.Options{Quant: q, DenseQuant: dq, Force: *force}); err != nil {
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

// archOptions parses --expert-act and --expert-depth: comma-separated
// values by routed expert index, or one value for every expert.
func archOptions(acts, depths string, experts int) (distill.ArchOptions, error) {
	var o distill.ArchOptions
	list := func(s string) []string {
		if s == "" {
			return nil
		}
		f := strings.Split(s, ",")
		if len(f) == 1 {
			f = slices.Repeat(f, max(experts, 1))
		}
		return f
	}
	for _, a := range list(acts) {
		o.Acts = append(o.Acts, model.Activation(strings.TrimSpace(a)))
	}
	for i, d := range list(depths) {
		n, err := strconv.Atoi(strings.TrimSpace(d))
		if err != nil || n < 1 {
			return o, fmt.Errorf("--expert-depth: entry %d %q is not a depth >= 1", i, d)
		}
		o.Depths = append(o.Depths, n)
	}
	return o, nil
}
