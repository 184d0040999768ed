package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDistill: a synthetic dense model distils to a verifiable pack with a
// JSON report, from a text file; compare measures the pack against its
// teacher on other text; bad inputs fail with clear messages.
func TestDistill(t *testing.T) {
	d := t.TempDir()
	src, p := filepath.Join(d, "src"), filepath.Join(d, "pack")
	if code, out, errOut := runMP("synth", "--arch", "llama", "--seed", "2", "-o", src); code != 0 {
		t.Fatalf("synth: exit %d\n%s%s", code, out, errOut)
	}
	moe := filepath.Join(d, "moe")
	if code, out, errOut := runMP("synth", "--arch", "mixtral", "--seed", "2", "-o", moe); code != 0 {
		t.Fatalf("synth: exit %d\n%s%s", code, out, errOut)
	}
	text := filepath.Join(d, "calib.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("Once upon a time there was a little dog. ", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(d, "empty.txt")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runMP("distill", src, "-o", p, "--experts", "4", "--top-k", "2", "--calib", text, "--seq-len", "32", "--train-steps", "2")
	if code != 0 {
		t.Fatalf("distill: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "top-1 agreement") {
		t.Errorf("report text: %s", out)
	}
	if _, err := os.Stat(filepath.Join(p, "distill-report.json")); err != nil {
		t.Error(err)
	}
	if code, out, errOut := runMP("verify", p); code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	// The closed-form refit and KL-only training on fresh teacher samples.
	p2 := filepath.Join(d, "pack2")
	code, out, errOut = runMP("distill", src, "-o", p2, "--experts", "4", "--top-k", "2", "--self-generate", "10", "--seq-len", "16",
		"--refit", "2", "--sequential", "--refit-target", "residual", "--refit-ridge", "1e-2",
		"--train-steps", "2", "--lm-weight", "0", "--argmax-weight", "0.5", "--fresh", "6", "--batch", "3", "--cosine", "--train-all", "--router-lr", "0.01",
		"--expert-choice-layers", "1", "--expert-choice-aux", "0.1", "--expert-choice-anneal", "0.5", "--aux-logit-scale", "1e4", "--expert-clip", "1")
	if code != 0 {
		t.Fatalf("distill with refit and fresh training: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "refit FFN error") || !strings.Contains(errOut, "fresh teacher samples") {
		t.Errorf("log lacks the refit or fresh-sample lines:\n%s", errOut)
	}
	// Expert choice in layer 0 for the first of the two steps, the hand-over measured.
	if !strings.Contains(out, "expert choice in the first 1 layers for 1 of 2 steps") || !strings.Contains(out, "held-out with expert choice in the first 1 layers") ||
		!strings.Contains(out, "per-expert gradient clip 1") {
		t.Errorf("report lacks the expert-choice or clipping lines:\n%s", out)
	}
	if code, out, errOut := runMP("verify", p2); code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}

	// Experts of other architectures: explicit activations and depths and
	// the deepen rule, trained, written as a pack that verifies and loads.
	p3 := filepath.Join(d, "pack3")
	code, out, errOut = runMP("distill", src, "-o", p3, "--experts", "4", "--top-k", "2", "--calib", text, "--seq-len", "32",
		"--expert-act", "silu,gelu_tanh,relu2,silu", "--expert-depth", "1,1,2,1", "--deepen", "1", "--deepen-width", "8",
		"--train-steps", "2", "--train-experts", "--quant", "q8_0")
	if code != 0 {
		t.Fatalf("distill with expert architectures: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "gelu_tanh blocks") || !strings.Contains(out, "(deepened)") || !strings.Contains(errOut, "expert calibration errors") {
		t.Errorf("report lacks the per-expert architecture lines:\n%s\n%s", out, errOut)
	}
	if code, out, errOut := runMP("verify", p3); code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	// Tiny experts (width 1 and 2) with the threshold control and the
	// compute loss: the pack verifies (the runtime takes any width ≥ 1).
	p4 := filepath.Join(d, "pack4")
	code, out, errOut = runMP("distill", src, "-o", p4, "--experts", "4", "--top-k", "3", "--calib", text, "--seq-len", "32",
		"--tiny-experts", "2", "--tiny-width", "2", "--tiny-budget", "1.5", "--tiny-control", "0.02", "--compute-weight", "0.01", "--aux-logit-scale", "1e4",
		"--refit", "1", "--sequential", "--train-steps", "2", "--train-all", "--router-lr", "0.01")
	if code != 0 {
		t.Fatalf("distill with tiny experts: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "tiny experts: 2 per layer of width 2") || !strings.Contains(out, "held at 1.5 by the threshold control") ||
		!strings.Contains(out, "compute loss: weight 0.01") || !strings.Contains(errOut, "threshold τ") {
		t.Errorf("report lacks the tiny-expert lines:\n%s\n%s", out, errOut)
	}
	if code, out, errOut := runMP("verify", p4); code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	for _, bad := range [][]string{{"--expert-act", "swish"}, {"--expert-depth", "1,0"}, {"--expert-act", "silu,silu,silu,silu,silu"}, {"--tiny-control", "0.1"}} {
		args := append([]string{"distill", src, "-o", filepath.Join(d, "bad"), "--experts", "4", "--top-k", "2", "--calib", text, "--seq-len", "32"}, bad...)
		if code, _, errOut := runMP(args...); code == 0 || !strings.Contains(errOut, bad[0]) {
			t.Errorf("%v: exit %d, stderr %q: want a failure naming %s", bad, code, errOut, bad[0])
		}
	}

	// compare: the distilled pack against its teacher on fresh samples, the
	// teacher against itself, and the JSON report.
	js := filepath.Join(d, "cmp.json")
	small := filepath.Join(d, "small")
	if code, out, errOut := runMP("synth", "--arch", "llama", "--vocab", "300", "-o", small); code != 0 {
		t.Fatalf("synth: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runMP("compare", src, p2, "--self-generate", "4", "--seq-len", "16", "--seed", "9", "--json", js)
	if code != 0 || !strings.Contains(out, "student: 4 experts, top-2") || !strings.Contains(out, "compared: top-1 agreement") {
		t.Fatalf("compare: exit %d\n%s%s", code, out, errOut)
	}
	var rep struct {
		Agreement float64 `json:"top1_agreement"`
		Positions int     `json:"heldout_positions"`
	}
	if b, err := os.ReadFile(js); err != nil || json.Unmarshal(b, &rep) != nil || rep.Positions == 0 || rep.Agreement <= 0 {
		t.Errorf("compare JSON %+v (read error %v)", rep, err)
	}
	if code, out, errOut := runMP("compare", src, src, "--calib", text, "--seq-len", "32"); code != 0 || !strings.Contains(out, "compared: top-1 agreement 1.0000, KL(teacher||student) 0.00000") || !strings.Contains(out, "student: dense") {
		t.Errorf("compare teacher with itself: exit %d\n%s%s", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"compare", src, small, "--self-generate", "2"}, "student vocab 300"},
		{[]string{"compare", src, filepath.Join(d, "nope"), "--self-generate", "2"}, "student:"},
		{[]string{"compare", src, p2}, "exactly one of --calib"},
		{[]string{"distill", src, "-o", filepath.Join(d, "x"), "--calib", empty}, "empty"},
		{[]string{"distill", src, "-o", filepath.Join(d, "x"), "--calib", text, "--top-k", "9"}, "--top-k 9"},
		{[]string{"distill", moe, "-o", filepath.Join(d, "x"), "--calib", text}, "already a mixture of experts"},
		{[]string{"distill", src, "-o", filepath.Join(d, "x")}, "exactly one of --calib"},
		{[]string{"distill", src, "-o", filepath.Join(d, "x"), "--calib", text, "--refit-target", "global"}, "--refit-target"},
		{[]string{"distill", src, "-o", filepath.Join(d, "x"), "--calib", text, "--fresh", "-1", "--train-steps", "1"}, "fresh"},
	} {
		if code, _, errOut := runMP(tc.args...); code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}
