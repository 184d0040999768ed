package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moderuntime/mode/shaders"
)

// TestWGSLInChromium compiles every kernel variant with Chrome's own WGSL
// compiler (Tint, through createShaderModule and createComputePipeline on
// SwiftShader), so that the rules a browser enforces are checked on every
// machine, not only where a standalone tint or naga is installed
// (shaders.TestWGSLValidates). Pipeline creation also checks what module
// compilation does not: workgroup sizes and storage against the device's
// limits (SwiftShader allows 256 invocations per workgroup).
//
// The f16-arithmetic variants need a device with shader-f16, which
// SwiftShader does not offer, and the subgroup variants one with
// subgroups, which it does; each is compiled only where the adapter has
// its feature, and the test says how many it left out.
func TestWGSLInChromium(t *testing.T) {
	chromium := findChromium(t)
	type source struct {
		Key  string `json:"key"`
		Code string `json:"code"`
		F16  bool   `json:"f16"`
		SG   bool   `json:"sg"`
	}
	var srcs []source
	for _, v := range shaders.Variants() {
		code, err := shaders.Source(v.Kernel, v.Spec)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, source{Key: v.Kernel.Key(v.Spec), Code: code, F16: v.Spec.F16, SG: v.Spec.Subgroups})
	}
	body, err := json.Marshal(srcs)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><title>wgsl</title><script>window.mode = {};</script>`))
	})
	mux.HandleFunc("/shaders.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	srv := httptest.NewServer(mux) // 127.0.0.1: a secure context, so navigator.gpu exists
	defer srv.Close()

	b := openBrowserWith(t, chromium, srv.URL+"/", true)
	type result struct {
		Adapter  string   `json:"adapter"`
		Compiled int      `json:"compiled"`
		Skipped  []string `json:"skipped"`
		Errors   []string `json:"errors"`
		Fatal    string   `json:"fatal"`
	}
	// Batches of variants, each its own evaluation and time budget: all of
	// them at once outlast eval's timeout on a loaded machine.
	const batch = 10
	var r result
	for from := 0; from < len(srcs); from += batch {
		js := fmt.Sprintf(`(async () => {
		const ad = await navigator.gpu?.requestAdapter();
		if (!ad) return {fatal: "no WebGPU adapter"};
		const f16 = ad.features.has("shader-f16"), sg = ad.features.has("subgroups");
		const want = {};
		for (const k of ["maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX", "maxComputeWorkgroupStorageSize", "maxStorageBuffersPerShaderStage"]) want[k] = ad.limits[k];
		const dev = await ad.requestDevice({requiredFeatures: [...(f16 ? ["shader-f16"] : []), ...(sg ? ["subgroups"] : [])], requiredLimits: want});
		const srcs = (await (await fetch("/shaders.json")).json()).slice(%d, %d);
		const out = {adapter: [ad.info?.architecture, ad.info?.description].filter(Boolean).join(" "), compiled: 0, skipped: [], errors: []};
		for (const s of srcs) {
			if (s.f16 && !f16 || s.sg && !sg) { out.skipped.push(s.key); continue; }
			dev.pushErrorScope("validation");
			const mod = dev.createShaderModule({code: s.code, label: s.key});
			const info = await mod.getCompilationInfo();
			const msgs = info.messages.filter((m) => m.type === "error").map((m) => m.lineNum + ":" + m.linePos + " " + m.message);
			const entry = s.key.split("/")[0].split(":")[1];
			try {
				await dev.createComputePipelineAsync({layout: "auto", compute: {module: mod, entryPoint: entry}});
			} catch (e) {
				msgs.push("pipeline: " + e.message);
			}
			const err = await dev.popErrorScope();
			if (err && !msgs.length) msgs.push(err.message);
			if (msgs.length) out.errors.push(s.key + ": " + msgs.join("; ")); else out.compiled++;
		}
		dev.destroy();
		return out;
	})()`, from, min(from+batch, len(srcs)))
		// A batch takes seconds; one that outlasts its limit has hung in
		// the browser (a clean-clone CI run saw the machine idle for the
		// last minute of such a wait), so it is tried once more on a
		// fresh load of the page before the test gives up on it.
		var part result
		for attempt := 1; ; attempt++ {
			ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
			v, err := chromedp.Run(ctx, chromedp.Evaluate[result](js, chromedp.EvalAwaitPromise))
			cancel()
			if err == nil {
				part = v
				break
			}
			if attempt == 2 {
				t.Fatalf("variants %d to %d: in the browser, twice: %v", from, min(from+batch, len(srcs))-1, err)
			}
			t.Logf("variants %d to %d: in the browser: %v; reloading the page and trying them again", from, min(from+batch, len(srcs))-1, err)
			if _, err := chromedp.Run(b.ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
				t.Fatalf("reloading the page: %v", err)
			}
		}
		if part.Fatal != "" {
			t.Fatal(part.Fatal)
		}
		r.Adapter = part.Adapter
		r.Compiled += part.Compiled
		r.Skipped = append(r.Skipped, part.Skipped...)
		r.Errors = append(r.Errors, part.Errors...)
	}
	if r.Fatal != "" {
		t.Fatal(r.Fatal)
	}
	for _, e := range r.Errors {
		t.Error(e)
	}
	if r.Compiled+len(r.Skipped)+len(r.Errors) != len(srcs) {
		t.Errorf("%d compiled, %d skipped, %d failed: %d variants were sent", r.Compiled, len(r.Skipped), len(r.Errors), len(srcs))
	}
	for _, k := range r.Skipped {
		if !strings.HasSuffix(k, "/f16arith") && !strings.HasSuffix(k, "/sg") {
			t.Errorf("%s was not compiled: only f16-arithmetic and subgroup variants may be left out", k)
		}
	}
	t.Logf("Tint on %s compiled %d of %d variants; left out for want of shader-f16 or subgroups: %d (%s)",
		r.Adapter, r.Compiled, len(srcs), len(r.Skipped), strings.Join(r.Skipped, ", "))
}
