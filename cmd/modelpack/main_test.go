package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func runMP(args ...string) (int, string, string) {
	var o, e bytes.Buffer
	code := run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestPipeline: synth, import, verify, inspect and index work end to end,
// and verify's exit status reports a corrupted shard.
func TestPipeline(t *testing.T) {
	d := t.TempDir()
	src, p, src2 := filepath.Join(d, "src"), filepath.Join(d, "pack"), filepath.Join(d, "src2")
	steps := [][]string{
		{"synth", "--arch", "mode", "--expert-widths", "32,96,64,16", "--seed", "3", "-o", src},
		{"import", src, "-o", p, "--quant", "q4_0", "--stats"},
		{"verify", p},
		{"import", src, "-o", p + "-all4", "--quant", "q4_0", "--dense-quant", "q4_0"},
		{"verify", p + "-all4"},
		{"import", src, "-o", p + "-gptq", "--quant", "q4_k", "--calib-self", "4", "--calib-len", "16", "--embed-quant", "q8_0"},
		{"verify", p + "-gptq"},
		{"inspect", p},
		{"index", src, "-o", filepath.Join(src, "manifest.json")},
		{"verify", filepath.Join(src, "manifest.json")},
		// a sharded bf16 checkpoint, as hf: tests serve them
		{"synth", "--arch", "olmoe", "--dtype", "bf16", "--files", "2", "-o", src2},
		{"index", src2, "-o", filepath.Join(src2, "manifest.json")},
		{"verify", filepath.Join(src2, "manifest.json")},
	}
	for _, s := range steps {
		if code, out, errOut := runMP(s...); code != 0 {
			t.Fatalf("modelpack %v: exit %d\n%s%s", s, code, out, errOut)
		} else if s[0] == "inspect" && !strings.Contains(out, "experts are") {
			t.Errorf("inspect output lacks the expert share:\n%s", out)
		} else if s[0] == "inspect" && !strings.Contains(out, "bits per weight (shard bytes, padding included): core ") {
			t.Errorf("inspect output lacks bits per weight:\n%s", out)
		} else if s[0] == "inspect" && !strings.Contains(out, "quant q4_0 experts, q8_0 dense matrices") {
			t.Errorf("inspect output does not name the dense format:\n%s", out)
		} else if s[0] == "import" && s[2] == "-o" && s[3] == p && !strings.Contains(out, "quant q4_0 experts, q8_0 dense matrices") {
			t.Errorf("a q4_0 import of a MoE model should keep its dense matrices at q8_0: %s", out)
		} else if slices.Contains(s, "--dense-quant") && !strings.HasSuffix(strings.TrimSpace(out), "quant q4_0") {
			t.Errorf("import --dense-quant q4_0: %s", out)
		} else if slices.Contains(s, "--calib-self") && !strings.Contains(errOut, "GPTQ: input statistics of") {
			t.Errorf("import --calib-self stderr: %s", errOut)
		} else if slices.Contains(s, "--stats") && !strings.Contains(out, "peak RSS") {
			t.Errorf("import --stats output: %s", out)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(src2, "model-0000?-of-00002.safetensors")); len(files) != 2 {
		t.Errorf("synth --files 2 wrote %v", files)
	}
	shards, _ := filepath.Glob(filepath.Join(p, "shards", "*"))
	var victim string
	for _, s := range shards {
		if filepath.Ext(s) == "" {
			victim = s
			break
		}
	}
	b, _ := os.ReadFile(victim)
	b[0] ^= 0xff
	os.WriteFile(victim, b, 0o644)
	code, _, errOut := runMP("verify", p)
	if code != 1 || !strings.Contains(errOut, "sha256") {
		t.Fatalf("verify of a corrupted pack: exit %d, %q", code, errOut)
	}
}

func TestErrors(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "notes.txt"), []byte("mine"), 0o644)
	os.WriteFile(filepath.Join(d, "empty.txt"), nil, 0o644)
	src := filepath.Join(d, "src")
	if code, _, errOut := runMP("synth", "--arch", "llama", "-o", src); code != 0 {
		t.Fatal(errOut)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage"},
		{[]string{"import"}, 2, "usage: modelpack import"},
		{[]string{"import", "/nonexistent", "-o", filepath.Join(d, "p")}, 1, "/nonexistent"},
		{[]string{"import", "x", "-o", "y", "--quant", "q3"}, 1, `unknown dtype "q3"`},
		{[]string{"import", "x", "-o", "y", "--max-shard", "lots"}, 1, "--max-shard"},
		{[]string{"synth", "--arch", "gpt5", "-o", filepath.Join(d, "s")}, 1, "gpt5"},
		{[]string{"import", src, "-o", filepath.Join(d, "p"), "--quant", "f16", "--calib-self", "2"}, 1, "need --quant q8_0, q4_0 or q4_k"},
		{[]string{"import", src, "-o", filepath.Join(d, "p"), "--embed-quant", "q8_0"}, 1, "--embed-quant needs --quant"},
		{[]string{"import", src, "-o", filepath.Join(d, "p"), "--quant", "q4_0", "--embed-quant", "q9"}, 1, "--embed-quant"},
		{[]string{"import", src, "-o", filepath.Join(d, "p"), "--dense-quant", "q8_0"}, 1, "--dense-quant needs --quant"},
		{[]string{"import", src, "-o", filepath.Join(d, "p"), "--quant", "q4_0", "--dense-quant", "q9"}, 1, "--dense-quant"},
		{[]string{"import", src, "-o", filepath.Join(d, "p"), "--quant", "bf16"}, 1, "--quant: bf16 is not a pack format"},
		{[]string{"distill", src, "-o", filepath.Join(d, "p"), "--self-generate", "2", "--quant", "q4_0", "--dense-quant", "bf16"}, 1, "--dense-quant: bf16 is not a pack format"},
		{[]string{"import", src, "-o", filepath.Join(d, "p"), "--quant", "q4_0", "--dense-quant", "q8_0"}, 1, "needs a model with routed experts"},
		{[]string{"import", src, "-o", filepath.Join(d, "p"), "--quant", "q4_0", "--calib-self", "2", "--calib", "x"}, 1, "one of --calib FILE and --calib-self N"},
		{[]string{"import", src, "-o", filepath.Join(d, "p"), "--quant", "q4_0", "--calib", filepath.Join(d, "empty.txt")}, 1, "empty.txt: no tokens"},
		{[]string{"import", src, "-o", filepath.Join(d, "p"), "--quant", "q4_0", "--calib", filepath.Join(d, "missing.txt")}, 1, "missing.txt"},
		{[]string{"verify", d}, 1, "manifest.json"},
		{[]string{"inspect", filepath.Join(d, "nope.json")}, 1, "nope.json"},
	}
	for _, tt := range tests {
		code, _, errOut := runMP(tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("modelpack %v: exit %d, stderr %q; want exit %d mentioning %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(d, "notes.txt")); string(b) != "mine" {
		t.Error("a user file was changed")
	}
}
