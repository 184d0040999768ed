package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestLongReplies is the matrix that catches what short greedy runs do
// not: three consecutive 256-token sampled replies and a regenerate, per
// pack and backend, in one engine, with the worker alive at the end.
//
// WebGPU died in 2 of about 10 such replies before the fix in
// webgpu/device_js.go: writeBuffer got a view of the wasm memory that a
// growing Go heap had detached. The packs cover the shapes that crashed
// (a distilled pack of experts of different widths, f32 and q4_0; a
// synthetic MoE at q4_0 with lazily loaded experts and an expert budget
// smaller than the layer) and the dense one that did not.
//
// Replies are 256 tokens on the CPU and 48 on WebGPU: SwiftShader decodes
// these MoE packs at 4–10 tokens/s, and the old crash came within the
// first 30 tokens of the distilled pack.
func TestLongReplies(t *testing.T) {
	chromium := findChromium(t)
	models := shared.Models(t)
	rb := buildRuntime(t)
	root, tmp := rb.root, rb.tmp

	packs := filepath.Join(tmp, "packs")
	stories := filepath.Join(models, "stories260K", "stories260K.bin")
	packModel(t, stories, filepath.Join(packs, "dense-q8"), tensor.Q8_0)
	modelpack := filepath.Join(tmp, "modelpack")
	goBuild(t, root, nil, modelpack, "./cmd/modelpack")
	distilled := filepath.Join(packs, "distilled-f32")
	runCmd(t, modelpack, "distill", stories, "-o", distilled, "--experts", "8", "--top-k", "4", "--shared", "32",
		"--self-generate", "40", "--seq-len", "128", "--seed", "1", "--force")
	packModel(t, distilled, filepath.Join(packs, "distilled-q4"), tensor.Q4_0)
	synthPack(t, tmp, "mixtral", filepath.Join(packs, "moe-q4"), func(o *synth.Options) {
		o.Dim, o.Layers, o.Heads, o.KVHeads, o.FFN, o.Experts, o.TopK, o.MaxSeq = 64, 2, 4, 2, 64, 8, 2, 1024
	}, tensor.Q4_0)
	base := startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(root, "web"),
		"--wasm", rb.wasm, "--models", packs)

	gpu := openBrowserWith(t, chromium, base+"index.html", true)
	for _, pk := range []struct {
		name     string
		budgetMB float64
	}{
		{"dense-q8", 0},
		{"distilled-f32", 0},
		{"distilled-q4", 0},
		{"moe-q4", 0.05}, // about 7 of its 16 experts (7 KB each)
	} {
		for _, be := range []string{"cpu", "webgpu"} {
			replyTokens := map[string]int{"cpu": 256, "webgpu": 48}[be]
			t.Run(pk.name+"/"+be, func(t *testing.T) {
				r := gpu.longReplies(t, "/packs/"+pk.name+"/manifest.json", be, pk.budgetMB, replyTokens)
				if r.Error != "" {
					t.Fatalf("%s: %s", r.Code, r.Error)
				}
				if r.Backend != be {
					t.Errorf("ran on %q, asked for %q", r.Backend, be)
				}
				for i, n := range r.Tokens {
					if n != replyTokens && r.Finish[i] != "stop" {
						t.Errorf("reply %d: %d tokens, finish %q; want %d or a stop", i+1, n, r.Finish[i], replyTokens)
					}
				}
				if r.Regenerated == r.First {
					t.Errorf("regenerate at temperature 0.8 without a seed repeated the reply: %q", r.First)
				}
				t.Logf("replies of %v tokens; decode %.1f tok/s", r.Tokens, r.Decode)
			})
		}
	}
}

// longRun is what longReplies reports.
type longRun struct {
	Tokens      []int    `json:"tokens"`
	Finish      []string `json:"finish"`
	First       string   `json:"first"`
	Regenerated string   `json:"regenerated"`
	Backend     string   `json:"backend"`
	Decode      float64  `json:"decode"`
	Code        string   `json:"code"`
	Error       string   `json:"error"`
}

// longReplies streams three n-token replies at temperature 0.8 and
// regenerates the first, then asks for stats: a worker that died fails
// that last call.
func (b *browser) longReplies(t *testing.T, manifestURL, backend string, budgetMB float64, n int) longRun {
	t.Helper()
	// Four 48-token WebGPU replies on SwiftShader take about a minute on
	// an idle 2-core machine; the limit leaves room for a loaded one.
	return evalFor[longRun](t, b, fmt.Sprintf(`(async () => {
		let e;
		try {
			e = await mode.create({model: %q, backend: %q, cache: "none", expertBudgetMB: %v});
			const out = {tokens: [], finish: [], backend: e.info.backend};
			const reply = async (prompt) => {
				let text = "", n = 0, finish = "";
				const it = await e.completions.create({prompt, temperature: 0.8, max_tokens: %d, stream: true});
				for await (const c of it) {
					text += c.choices[0].text ?? "";
					finish = c.choices[0].finish_reason ?? finish;
					if (c.usage) n = c.usage.completion_tokens;
				}
				return {text, n, finish};
			};
			for (const p of ["Once upon a time", "The little dog", "One day"]) {
				const r = await reply(p);
				out.tokens.push(r.n); out.finish.push(r.finish);
				if (!out.first) out.first = r.text;
			}
			out.regenerated = (await reply("Once upon a time")).text;
			out.decode = (await e.stats()).decodeTokensPerSecond;
			await e.unload();
			return out;
		} catch (err) {
			e?.unload().catch(() => {});
			return {code: err.code ?? "", error: String(err.message ?? err)};
		}
	})()`, manifestURL, backend, budgetMB, n), 240*time.Second)
}

func runCmd(t *testing.T, bin string, args ...string) {
	t.Helper()
	if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, b)
	}
}

// TestLongConversation holds a ten-turn chat through mode.js in Chromium
// on stories260K (a 512-token context): every turn is answered, turns
// past the context leave the oldest messages out (never the system
// prompt) and say so, and a turn that follows one without a drop
// prefills only what is new, the rest coming from the KV cache.
func TestLongConversation(t *testing.T) {
	chromium := findChromium(t)
	models := shared.Models(t)
	rb := buildRuntime(t)
	packs := filepath.Join(rb.tmp, "packs")
	packModel(t, filepath.Join(models, "stories260K", "stories260K.bin"), filepath.Join(packs, "stories260K"), tensor.Q8_0)
	base := startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(rb.root, "web"),
		"--wasm", rb.wasm, "--models", packs)
	b := openBrowser(t, chromium, base+"index.html")

	type turn struct {
		Reply    string `json:"reply"`
		Finish   string `json:"finish"`
		Prompt   int    `json:"prompt"`
		Cached   int    `json:"cached"`
		Prefill  int    `json:"prefilled"`
		Dropped  int    `json:"dropped"`
		Note     string `json:"note"`
		MaxSeen  int    `json:"completion"`
		Problems string `json:"error"`
	}
	turns := eval[[]turn](t, b, `(async () => {
		const e = await mode.create({model: "/packs/stories260K/manifest.json", backend: "cpu", cache: "none"});
		const messages = [{role: "system", content: "Tell short stories."}];
		const out = [];
		try {
			for (let i = 0; i < 10; i++) {
				messages.push({role: "user", content: i === 0 ? "Once upon a time" : "Tell me more."});
				const r = await e.chat.completions.create({messages, temperature: 0.8, max_tokens: 120});
				const reply = r.choices[0].message.content;
				messages.push({role: "assistant", content: reply});
				out.push({reply, finish: r.choices[0].finish_reason, prompt: r.usage.prompt_tokens,
					cached: r.usage.prompt_tokens_details?.cached_tokens ?? 0, prefilled: r.usage.prefilled_tokens,
					dropped: r.dropped_messages ?? 0, note: r.note ?? "", completion: r.usage.completion_tokens});
			}
		} catch (err) {
			out.push({error: String(err.message ?? err)});
		}
		await e.unload();
		return out;
	})()`)
	if n := len(turns); n == 0 || turns[n-1].Problems != "" {
		t.Fatalf("the conversation ended after %d turns: %+v", n, turns)
	}
	if len(turns) != 10 {
		t.Fatalf("%d turns answered, want 10", len(turns))
	}
	dropped, reused := false, false
	for i, tr := range turns {
		t.Logf("turn %d: prompt %d = %d cached + %d prefilled, reply %d tokens (%s), dropped %d %q",
			i+1, tr.Prompt, tr.Cached, tr.Prefill, tr.MaxSeen, tr.Finish, tr.Dropped, tr.Note)
		if tr.Finish != "stop" && tr.Finish != "length" {
			t.Errorf("turn %d: finish %q", i+1, tr.Finish)
		}
		if tr.Cached+tr.Prefill != tr.Prompt {
			t.Errorf("turn %d: %d cached + %d prefilled is not the prompt's %d tokens", i+1, tr.Cached, tr.Prefill, tr.Prompt)
		}
		if tr.Prompt+tr.MaxSeen > 512 {
			t.Errorf("turn %d: %d prompt + %d reply tokens overrun the 512-token context", i+1, tr.Prompt, tr.MaxSeen)
		}
		if tr.Dropped > 0 {
			dropped = true
			if tr.Note == "" {
				t.Errorf("turn %d left %d messages out without a note", i+1, tr.Dropped)
			}
		}
		// A turn after one that dropped nothing extends the cached text.
		if i > 0 && tr.Dropped == 0 && turns[i-1].Dropped == 0 {
			if tr.Cached == 0 || tr.Prefill >= tr.Prompt/2 {
				t.Errorf("turn %d: %d of %d prompt tokens prefilled, %d from the cache: the earlier turns were not reused", i+1, tr.Prefill, tr.Prompt, tr.Cached)
			}
			reused = true
		}
	}
	if !dropped {
		t.Error("ten turns never outgrew the context: the test does not exercise overflow")
	}
	if !reused {
		t.Error("no turn followed one without a drop: the test does not exercise reuse")
	}
}
