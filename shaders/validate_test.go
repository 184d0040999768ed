package shaders_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moderuntime/mode/shaders"
)

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
		// Not silent in CI either: every variant the browser's device
		// supports is compiled by Chrome's Tint in e2e TestWGSLInChromium;
		// only the f16-arithmetic ones, which no device here can compile,
		// wait for a standalone compiler.
		t.Skip("neither naga nor tint on PATH: e2e TestWGSLInChromium validates every variant but the f16-arithmetic ones")
	}
	dir := t.TempDir()
	n := 0
	for _, v := range shaders.Variants() {
		src, err := shaders.Source(v.Kernel, v.Spec)
		if err != nil {
			t.Fatal(err)
		}
		key := v.Kernel.Key(v.Spec)
		file := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(key)+".wgsl")
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tool := range tools {
			f := file
			if tool[0] == "naga" && v.Spec.Subgroups {
				// naga 30 parses and validates the subgroup builtins but
				// not yet the directive that enables them ("the
				// `subgroups` enable-extension is not yet supported").
				f = file + ".naga.wgsl"
				if err := os.WriteFile(f, []byte(strings.Replace(src, "enable subgroups;\n", "", 1)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := exec.Command(tool[0], append(tool[1:], f)...).CombinedOutput()
			if err != nil {
				t.Errorf("%s rejects %s: %v\n%s", tool[0], key, err, out)
			}
		}
		n++
	}
	t.Logf("%d specialisations valid for %d compilers", n, len(tools))
}
