package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestKernelsInChromium runs package shaders' matrix-vector tests,
// compiled for js/wasm, in Chromium on SwiftShader, whose adapter has the
// subgroups feature (4 invocations wide) that the native binding cannot
// request: once as the backend opens a device there, with subgroups, so
// that every matvec case of up to 4 lanes runs both with its lanes meeting
// through subgroup shuffles and in workgroup memory against the Go twins
// (TestMatVecSubgroups also against each other), and once with
// MODE_WEBGPU_SUBGROUPS=off, which must leave the device without them
// (TestMatVecMulti and TestMatVecSubgroups, which must skip).
// This is where the subgroup path runs: natively it cannot (see
// webgpu.Device.SubgroupsNote).
func TestKernelsInChromium(t *testing.T) {
	chromium := findChromium(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	wasm := filepath.Join(t.TempDir(), "shaders.test.wasm")
	build := exec.Command("go", "test", "-c", "-o", wasm, "./shaders")
	build.Dir = root
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c ./shaders for js/wasm: %v\n%s", err, out)
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	wasmExec := filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js")

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><title>kernels</title><script src="/wasm_exec.js"></script><script>window.mode = {};</script>`))
	})
	mux.HandleFunc("/wasm_exec.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, wasmExec) })
	mux.HandleFunc("/shaders.test.wasm", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/wasm")
		http.ServeFile(w, r, wasm)
	})
	srv := httptest.NewServer(mux) // 127.0.0.1: a secure context, so navigator.gpu exists
	defer srv.Close()
	b := openBrowserWith(t, chromium, srv.URL+"/", true)

	type result struct {
		Code int    `json:"code"`
		Out  string `json:"out"`
	}
	run := "^TestMatVec(Ragged|Multi|Norm|Subgroups)?$"
	if r := os.Getenv("MODE_KERNELS_RUN"); r != "" {
		run = r // one test, when debugging
	}
	// Off, the cases already ran on the workgroup path beside their
	// subgroup runs: one test shows the switch.
	for _, c := range []struct {
		name, env, run string
		sg             bool
	}{{"subgroups", "", run, true}, {"subgroups off", "off", "^TestMatVec(Multi|Subgroups)$", false}} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			// Go's stdout reaches the page as console.log lines
			// (wasm_exec.js); they are collected while the tests run.
			r := evalFor[result](t, b, fmt.Sprintf(`(async () => {
				const lines = [], log = console.log;
				console.log = (...a) => { lines.push(a.join(" ")); };
				try {
					const go = new Go();
					go.argv = ["shaders.test", "-test.run", %q, "-test.v"];
					go.env = %q ? {MODE_WEBGPU_SUBGROUPS: %q} : {};
					let code = -1;
					go.exit = (c) => { code = c; };
					// internal/wasmsimd's imports: load answers 0 (no kernels
					// offered), so the CPU code linked in stays pure Go.
					go.importObject.modesimd = new Proxy({load: () => 0}, {get: (o, k) => o[k] ?? (() => { throw new Error("modesimd." + String(k)); })});
					const {instance} = await WebAssembly.instantiateStreaming(fetch("/shaders.test.wasm"), go.importObject);
					await go.run(instance);
					return {code, out: lines.join("\n")};
				} catch (e) {
					return {code: -2, out: lines.join("\n") + "\n" + String(e)};
				} finally {
					console.log = log;
				}
			})()`, c.run, c.env, c.env), 20*time.Minute)
			if r.Code != 0 {
				t.Fatalf("the shaders tests exited with %d in Chromium:\n%s", r.Code, r.Out)
			}
			subgroupCases := len(regexp.MustCompile(`(?m)^\s*--- PASS: \S+/subgroups \(`).FindAllString(r.Out, -1))
			compared := strings.Contains(r.Out, "--- PASS: TestMatVecSubgroups")
			if c.sg {
				if !compared || subgroupCases == 0 {
					t.Errorf("with subgroups: TestMatVecSubgroups passed: %v, subgroup cases passed: %d; want it passed and some cases:\n%s", compared, subgroupCases, r.Out)
				}
			} else if compared || subgroupCases != 0 || !strings.Contains(r.Out, "turned off") {
				t.Errorf("with MODE_WEBGPU_SUBGROUPS=off: TestMatVecSubgroups passed: %v, subgroup cases: %d; want neither, and the device saying subgroups were turned off:\n%s", compared, subgroupCases, r.Out)
			}
			for _, line := range strings.Split(r.Out, "\n") {
				if strings.Contains(line, "lanes meet") || strings.Contains(line, "--- SKIP") {
					t.Log(strings.TrimSpace(line))
					break
				}
			}
			t.Logf("%s: %d subgroup cases passed, every case against its twin, in %v", c.name, subgroupCases, time.Since(start).Round(time.Second))
		})
	}
}
