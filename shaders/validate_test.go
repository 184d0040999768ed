package shaders_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

// specs lists every specialisation the backend compiles, by kernel.
func specs() map[string][]shaders.Spec {
	var formats, matmul, f16 []shaders.Spec
	for _, f := range shaders.Formats {
		formats = append(formats, shaders.Spec{Format: f})
		matmul = append(matmul, shaders.Spec{Format: f, TT: 1}, shaders.Spec{Format: f, TT: 8})
	}
	f16 = []shaders.Spec{{Format: tensor.F16, F16: true}}
	return map[string][]shaders.Spec{
		"embed":       formats,
		"matmul":      append(matmul, shaders.Spec{Format: tensor.F16, TT: 1, F16: true}, shaders.Spec{Format: tensor.F16, TT: 8, F16: true}),
		"matvec_rows": append(append([]shaders.Spec(nil), formats...), f16...),
		"gemm":        append(append([]shaders.Spec(nil), formats...), f16...),
		"moe_gu":      formats,
		"moe_down":    formats,
		"attn":        {{}, {KVF16: true}},
		"route":       {{E: 64, K: 8}},
		"sample":      {{K: 40}},
		"plain":       {{}},
	}
}

// TestWGSLValidates runs every specialisation of every kernel through the
// standalone WGSL compilers found on PATH: naga (a newer one than the
// wgpu-native binding's, with f16) and tint (Chrome's compiler, whose
// rules a browser enforces). It is the only check the f16-arithmetic
// variants get where the device cannot compile them (see TestF16Arith).
func TestWGSLValidates(t *testing.T) {
	var tools [][]string
	if _, err := exec.LookPath("naga"); err == nil {
		tools = append(tools, []string{"naga"})
	}
	if _, err := exec.LookPath("tint"); err == nil {
		tools = append(tools, []string{"tint", "--format", "wgsl", "-o", os.DevNull})
	}
	if len(tools) == 0 {
		t.Skip("neither naga nor tint on PATH")
	}
	ks := map[string][]shaders.Kernel{
		"embed": {shaders.Embed}, "matmul": {shaders.MatMul}, "matvec_rows": {shaders.MatVecRows}, "gemm": {shaders.GEMM},
		"moe_gu": {shaders.MoEGateUp}, "moe_down": {shaders.MoEDown}, "attn": {shaders.AttnPartial, shaders.AttnReduce},
		"route": {shaders.Route}, "sample": {shaders.Sample},
		"plain": {shaders.RMSNorm, shaders.RoPE, shaders.Copy, shaders.PackF16, shaders.Add, shaders.SwiGLU, shaders.Accum,
			shaders.Argmax, shaders.MoECombine},
	}
	dir := t.TempDir()
	n := 0
	for group, list := range ks {
		for _, k := range list {
			for _, s := range specs()[group] {
				src, err := shaders.Source(k, s)
				if err != nil {
					t.Fatal(err)
				}
				file := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(k.Key(s))+".wgsl")
				if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
					t.Fatal(err)
				}
				for _, tool := range tools {
					out, err := exec.Command(tool[0], append(tool[1:], file)...).CombinedOutput()
					if err != nil {
						t.Errorf("%s rejects %s: %v\n%s", tool[0], k.Key(s), err, out)
					}
				}
				n++
			}
		}
	}
	t.Logf("%d specialisations valid for %d compilers", n, len(tools))
}
