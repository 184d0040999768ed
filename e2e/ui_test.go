package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/tensor"
)

// uiSite is a devserver over a copy of web/ with the chat page's wasm
// built into it, and two packs: stories260K (dense) and a small synthetic
// mixture of experts, so that the expert map has something to show.
type uiSite struct {
	base      string // devserver URL, ending in "/"
	artefacts string // where screenshots go
	// What the devserver was started with, for a second one.
	server, web, wasm, packs string
}

// badTemplate does not parse: an if without a condition.
var badTemplate = "{% if %}{{ messages }}{% endif %}"

func startUISite(t *testing.T) uiSite {
	t.Helper()
	models := shared.Models(t)
	rb := buildRuntime(t)
	tmp, wasm, server := rb.tmp, rb.wasm, rb.server
	web := filepath.Join(tmp, "web")
	copyTree(t, filepath.Join(rb.root, "web"), web)
	goBuild(t, rb.root, []string{"GOOS=js", "GOARCH=wasm"}, filepath.Join(web, "ui", "ui.wasm"), "./cmd/ui")

	packs := filepath.Join(tmp, "packs")
	packModel(t, filepath.Join(models, "stories260K", "stories260K.bin"), filepath.Join(packs, "stories260K"), tensor.Q8_0)
	// A pack whose chat template does not parse: it loads with a guessed
	// format, and the page and the widget say so.
	packModelTemplate(t, filepath.Join(models, "stories260K", "stories260K.bin"), filepath.Join(packs, "badtemplate"), tensor.Q8_0, &badTemplate)
	synthPack(t, tmp, "olmoe", filepath.Join(packs, "moe"), func(o *synth.Options) { o.Layers, o.Experts = 4, 16 }, tensor.Q4_0)
	base := startServer(t, server, "--addr", "127.0.0.1:0", "--web", web, "--wasm", wasm, "--models", packs)
	return uiSite{base: base, artefacts: artefactDir(t), server: server, web: web, wasm: wasm, packs: packs}
}

// startStoppable runs another devserver over the same packs, with extra
// flags, and returns its base URL and a function that kills it: a server
// that stops mid-download.
func (s uiSite) startStoppable(t *testing.T, flags ...string) (string, func()) {
	t.Helper()
	args := append([]string{"--addr", "127.0.0.1:0", "--web", s.web, "--wasm", s.wasm, "--models", s.packs}, flags...)
	cmd := exec.Command(s.server, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { cmd.Process.Kill(); cmd.Wait() }) }
	t.Cleanup(stop)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("devserver did not say where it listens: %v", err)
	}
	u, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("devserver's first line is %q", line)
	}
	return strings.TrimSuffix(u, "/") + "/", stop
}

// artefactDir is testdata/artefacts/<test> (gitignored), kept after the
// test so people can look at the screenshots.
func artefactDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join("testdata", "artefacts", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// copyTree copies the regular files under src to dst, leaving out build
// outputs that the test builds itself.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() || strings.HasSuffix(p, ".wasm") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}

// dialogs records JavaScript dialogs (alert, confirm, prompt) the page
// opens, dismissing each so the page goes on.
type dialogs struct {
	mu   sync.Mutex
	msgs []string
}

func watchDialogs(t *testing.T, ctx context.Context) *dialogs {
	d := &dialogs{}
	evs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range evs {
			if err != nil {
				return
			}
			d.mu.Lock()
			d.msgs = append(d.msgs, ev.Message)
			d.mu.Unlock()
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return d
}

func (d *dialogs) opened() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.msgs...)
}

// do runs actions with a timeout.
func do(t *testing.T, b *browser, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitFor polls a JavaScript condition.
func waitFor(t *testing.T, b *browser, what, js string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := pollPage(ctx, js, chromedp.WithPollingInterval(20*time.Millisecond)); err != nil {
		state := eval[string](t, b, `document.querySelector("#status")?.textContent ?? ""`)
		t.Fatalf("waiting for %s: %v (status line: %q)", what, err, state)
	}
}

// screenshot saves the viewport as name in dir and checks that it is not
// blank: the standard deviation of its luminance must be well above zero.
func screenshot(t *testing.T, b *browser, dir, name string) {
	t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if sd := lumaStdDev(img); sd < 8 {
		t.Errorf("screenshot %s looks blank: luminance standard deviation %.1f", p, sd)
	} else {
		t.Logf("screenshot %s: %dx%d, luminance standard deviation %.1f", p, img.Bounds().Dx(), img.Bounds().Dy(), sd)
	}
}

func lumaStdDev(img image.Image) float64 {
	var sum, sq, n float64
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			l := (0.299*float64(cr) + 0.587*float64(cg) + 0.114*float64(cb)) / 257
			sum += l
			sq += l * l
			n++
		}
	}
	mean := sum / n
	return math.Sqrt(max(0, sq/n-mean*mean))
}

// The page's elements, as the tests find them.
const (
	lastReply = `(() => { const t = document.querySelectorAll("#log li.assistant .text"); return t.length ? t[t.length - 1].textContent : ""; })()`
	lastNote  = `(() => { const t = document.querySelectorAll("#log li.assistant .note"); return t.length ? t[t.length - 1].textContent : ""; })()`
	idle      = `!document.querySelector("#send").disabled`
)

// pressEnter presses Enter in the focused element as a keydown and a
// keyup with no char event: SendKeys's "\n" adds a char event that a
// browser would not send after a keydown whose default was prevented.
func pressEnter(t *testing.T, b *browser) {
	t.Helper()
	for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
		_, err := chromedp.Call(b.ctx, input.DispatchKeyEvent, input.DispatchKeyEventParams{
			Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13})
		if err != nil {
			t.Fatalf("pressing Enter: %v", err)
		}
	}
}

// pick chooses a pack in the settings' select, as a person would.
func pick(t *testing.T, b *browser, manifest string) {
	t.Helper()
	eval[bool](t, b, fmt.Sprintf(`(() => {
		const s = document.querySelector("#pack");
		s.value = %q;
		s.dispatchEvent(new Event("change", {bubbles: true}));
		return true;
	})()`, manifest))
	waitFor(t, b, "the model URL to follow the pick", fmt.Sprintf(`document.querySelector("#model-url").value === %q`, manifest), 5*time.Second)
}

// setNumber types a value into a number field of the settings.
func setNumber(t *testing.T, b *browser, id string, v float64) {
	t.Helper()
	eval[bool](t, b, fmt.Sprintf(`(() => {
		const e = document.getElementById(%q);
		e.value = %q;
		e.dispatchEvent(new Event("change", {bubbles: true}));
		return true;
	})()`, id, fmt.Sprint(v)))
}

func TestChatUI(t *testing.T) {
	chromium := findChromium(t)
	site := startUISite(t)
	b := openBrowser(t, chromium, site.base+"ui/")
	dlg := watchDialogs(t, b.ctx)
	do(t, b, "viewport", chromedp.EmulateViewport(1280, 900))
	waitFor(t, b, "the chat to render and list the packs", `document.querySelectorAll("#pack option").length === 4`, 30*time.Second)
	do(t, b, "open the settings", chromedp.Click("#settings summary"))
	waitFor(t, b, "the settings to open", `document.querySelector("#settings").open`, 5*time.Second)

	t.Run("expert map follows lazy loading", func(t *testing.T) {
		if n := eval[string](t, b, `document.querySelector("#map-note").textContent`); !strings.HasPrefix(n, "No model loaded yet") {
			t.Errorf("before any model the expert map says %q", n)
		}
		// The page draws what the worker reports through mode.js: it
		// neither fetches the manifest nor opens the worker's storage.
		eval[bool](t, b, `(() => {
			window.cacheOpens = 0;
			const open = caches.open.bind(caches);
			caches.open = (...a) => { window.cacheOpens++; return open(...a); };
			return true;
		})()`)
		pick(t, b, "/packs/moe/manifest.json")
		setNumber(t, b, "temperature", 0)
		setNumber(t, b, "max-tokens", 12)
		do(t, b, "load", chromedp.Click("#load"))
		waitFor(t, b, "the model to load", `document.querySelector("#status").textContent === "Model loaded."`, 60*time.Second)
		cells := eval[int](t, b, `document.querySelectorAll("#expert-grid .cell").length`)
		if cells != 4*16 {
			t.Fatalf("the expert map has %d cells, want 4 layers × 16 experts", cells)
		}
		count := `document.querySelectorAll("#expert-grid .cell:not(.none)").length`
		before := eval[int](t, b, count)
		do(t, b, "type a prompt", chromedp.SendKeys("#prompt", "the cat sat on"))
		pressEnter(t, b)
		waitFor(t, b, "the reply", idle+` && document.querySelectorAll("#log li.assistant").length === 1`, 60*time.Second)
		waitFor(t, b, "the map to show fetched experts", count+` > `+fmt.Sprint(before), 10*time.Second)
		after := eval[int](t, b, count)
		note := eval[string](t, b, `document.querySelector("#map-note").textContent`)
		speed := eval[string](t, b, `document.querySelector("#speed").textContent`)
		t.Logf("expert map: %d of %d cells not 'not fetched' before generating, %d after; %q; %q", before, cells, after, note, speed)
		if !strings.Contains(speed, "decode") {
			t.Errorf("speed line %q, want prefill and decode tokens/s", speed)
		}
		// This browser has no WebGPU adapter: auto runs on the CPU and says why.
		if line := eval[string](t, b, `document.querySelector("#backend-in-use").textContent`); !strings.HasPrefix(line, "Running on the CPU: WebGPU is unavailable") {
			t.Errorf("backend line %q, want the CPU with the reason", line)
		}
		legend := eval[string](t, b, `document.querySelector("#map-legend").textContent`)
		for _, w := range []string{"downloaded (on disk)", "in memory", "routed for the last token", "used by recent tokens", "expert cache hit rate"} {
			if !strings.Contains(legend, w) {
				t.Errorf("the legend %q does not explain %q", legend, w)
			}
		}
		if h := eval[string](t, b, `document.querySelector("#expert-grid .hit").title`); !strings.Contains(h, "hit rate") {
			t.Errorf("a layer's percentage is explained as %q", h)
		}
		if strings.Contains(note, "dense") {
			t.Errorf("the map of a mixture of experts says %q", note)
		}
		if n := eval[int](t, b, `performance.getEntriesByType("resource").filter((e) => new URL(e.name).pathname.endsWith("manifest.json")).length`); n != 0 {
			t.Errorf("the page fetched a manifest %d times itself: the worker reports what the map needs", n)
		}
		if n := eval[int](t, b, `window.cacheOpens`); n != 0 {
			t.Errorf("the page opened Cache Storage %d times: the worker reports what it stores", n)
		}
		screenshot(t, b, site.artefacts, "chat-moe.png")
	})

	t.Run("a broken chat template is a load note; a pinned URL loads", func(t *testing.T) {
		load := func(model string) {
			t.Helper()
			eval[bool](t, b, fmt.Sprintf(`(() => {
				const u = document.querySelector("#model-url");
				u.value = %q;
				u.dispatchEvent(new Event("change", {bubbles: true}));
				return true;
			})()`, model))
			// Blank the status, so that the wait below sees this load's end,
			// not the last one's "Model loaded.".
			eval[bool](t, b, `(() => { document.querySelector("#status").textContent = ""; return true; })()`)
			do(t, b, "load "+model, chromedp.Click("#load"))
			waitFor(t, b, "the load of "+model, `(() => {
				const s = document.querySelector("#status").textContent;
				return s !== "" && !s.startsWith("Loading") && !document.querySelector("#load").disabled;
			})()`, 60*time.Second)
		}
		load("/packs/badtemplate/manifest.json")
		if s := eval[string](t, b, `document.querySelector("#status").textContent`); s != "Model loaded." {
			t.Fatalf("loading a pack with a broken template: status %q", s)
		}
		note := eval[string](t, b, `document.querySelector("#load-note")?.textContent ?? ""`)
		if !strings.Contains(note, "chat template does not parse") || !strings.Contains(note, "format instead") {
			t.Errorf("the load note is %q, want it to say the template does not parse and which format is used", note)
		}
		// A pack pinned by its manifest's hash loads, and has no note.
		load(pinned(t, filepath.Join(site.packs, "stories260K"), "/packs/stories260K/manifest.json"))
		if s := eval[string](t, b, `document.querySelector("#status").textContent`); s != "Model loaded." {
			t.Errorf("loading a pinned pack: status %q", s)
		}
		if n := eval[int](t, b, `document.querySelectorAll("#load-note").length`); n != 0 {
			t.Errorf("a pack with a working template shows a load note")
		}
		// A wrong pin is refused.
		load("/packs/stories260K/manifest.json#sha256=" + strings.Repeat("ab", 32))
		if e := eval[string](t, b, `document.querySelector("#load-error")?.textContent ?? ""`); !strings.Contains(e, "pins") {
			t.Errorf("a wrong pin: load error %q, want the pin mismatch", e)
		}
	})

	t.Run("stream, stop, shift+enter, regenerate, reload, clear", func(t *testing.T) {
		do(t, b, "clear", chromedp.Click("#clear"))
		waitFor(t, b, "the clear", `document.querySelectorAll("#log li").length === 0`, 5*time.Second)
		pick(t, b, "/packs/stories260K/manifest.json")
		setNumber(t, b, "temperature", 0.8)
		setNumber(t, b, "max-tokens", 400)
		do(t, b, "shift+enter", chromedp.Focus("#prompt"), chromedp.SendKeys("#prompt", "Once upon a time"),
			chromedp.KeyEvent("\r", chromedp.KeyModifiers(chromedp.ModifierShift)), chromedp.SendKeys("#prompt", "there was"))
		if v := eval[string](t, b, `document.querySelector("#prompt").value`); v != "Once upon a time\nthere was" {
			t.Errorf("after Shift+Enter the prompt is %q, want a newline in it", v)
		}
		if n := eval[int](t, b, `document.querySelectorAll("#log li").length`); n != 0 {
			t.Errorf("Shift+Enter sent the message: %d messages", n)
		}
		pressEnter(t, b)
		// Stop the reply as soon as its first words show. The page shows
		// the stream at its poll interval, and stories260K can write a
		// whole story (about 300 characters) within a few of them, so the
		// worker may already have finished when Stop is clicked (the reply
		// then ends by itself, with no note). Such a try proves nothing
		// about Stop: it is regenerated at another temperature, so the
		// sample differs, up to five times.
		type watched struct {
			Length  int  `json:"length"`
			Running bool `json:"running"`
		}
		stopped := false
		for try := 0; try < 5 && !stopped; try++ {
			if try > 0 {
				waitFor(t, b, "the finished reply", idle, 30*time.Second)
				setNumber(t, b, "temperature", 0.8+0.1*float64(try))
				do(t, b, "regenerate", chromedp.Click("#regenerate"))
			}
			r := eval[watched](t, b, `(async () => {
				const t0 = performance.now();
				let n = 0;
				while (performance.now() - t0 < 60000) {
					n = `+lastReply+`.length;
					if (n > 0) break;
					await new Promise((r) => setTimeout(r, 2));
				}
				const running = !(`+idle+`);
				document.querySelector("#stop").click();
				return {length: n, running};
			})()`)
			if r.Length == 0 {
				t.Fatalf("no reply text within 60 s")
			}
			waitFor(t, b, "the stop", idle, 30*time.Second)
			reply, note := eval[string](t, b, lastReply), eval[string](t, b, lastNote)
			switch {
			case !r.Running:
				t.Logf("try %d: the whole reply (%d characters) showed at once, before Stop; regenerating", try, len(reply))
			case note == "Stopped.":
				// The reply showed in part while it was still being written
				// (it streams), and Stop ended it.
				t.Logf("try %d: %d characters showed while running, stopped at %d: %q", try, r.Length, len(reply), reply)
				stopped = true
			case note == "":
				t.Logf("try %d: the reply ended by itself (%d characters) before the worker saw Stop; regenerating", try, len(reply))
			default:
				t.Fatalf("after Stop the reply's note is %q, want \"Stopped.\" (finish_reason abort)", note)
			}
		}
		if !stopped {
			t.Fatalf("five replies in a row ended by themselves before Stop reached the worker")
		}
		if prompt := eval[string](t, b, `document.querySelector("#prompt").value`); prompt != "" {
			t.Errorf("the prompt still holds %q after sending", prompt)
		}

		do(t, b, "regenerate", chromedp.Click("#regenerate"))
		waitFor(t, b, "the regenerated reply", idle+` && `+lastReply+`.length > 0`, 60*time.Second)
		if n := eval[int](t, b, `document.querySelectorAll("#log li").length`); n != 2 {
			t.Errorf("after regenerate: %d messages, want the user's and one reply", n)
		}
		screenshot(t, b, site.artefacts, "chat-stories.png")

		before := eval[string](t, b, `document.querySelector("#log").innerText`)
		do(t, b, "reload", chromedp.Navigate(site.base+"ui/"))
		waitFor(t, b, "the chat to render after a reload", `document.querySelectorAll("#log li").length === 2`, 30*time.Second)
		if after := eval[string](t, b, `document.querySelector("#log").innerText`); after != before {
			t.Errorf("the conversation changed across a reload:\nbefore %q\n after %q", before, after)
		}
		do(t, b, "clear", chromedp.Click("#clear"))
		waitFor(t, b, "the clear", `document.querySelectorAll("#log li").length === 0`, 5*time.Second)
	})

	t.Run("a 100 KB paste keeps the page alive and nothing is lost", func(t *testing.T) {
		// vugu renders through a 16 KiB instruction buffer: text bound
		// through the template past that size stopped the page (#14).
		const size = 100 << 10
		sentence := "The little cat sat on the warm mat and looked at the sun. "
		big := strings.Repeat(sentence, size/len(sentence)+1)[:size]
		pick(t, b, "/packs/stories260K/manifest.json")
		setNumber(t, b, "max-tokens", 20)
		// Input.insertText puts the text in as a paste does: one input event.
		do(t, b, "focus", chromedp.Focus("#prompt"))
		if _, err := chromedp.Call(b.ctx, input.InsertText, input.InsertTextParams{Text: big}); err != nil {
			t.Fatalf("pasting: %v", err)
		}
		if n := eval[int](t, b, `document.querySelector("#prompt").value.length`); n != size {
			t.Fatalf("the prompt holds %d characters after pasting %d", n, size)
		}
		waitFor(t, b, "the draft to be saved", fmt.Sprintf(`(localStorage.getItem("mode.chat.v1.draft") ?? "").length === %d`, size), 5*time.Second)

		// A reload keeps the draft.
		do(t, b, "reload", chromedp.Navigate(site.base+"ui/"))
		waitFor(t, b, "the draft back after a reload", fmt.Sprintf(`document.querySelector("#prompt")?.value.length === %d`, size), 30*time.Second)

		do(t, b, "send", chromedp.Click("#send"))
		waitFor(t, b, "the answer to the paste", idle+` && document.querySelectorAll("#log li.assistant").length === 1`, 120*time.Second)
		if u := eval[string](t, b, `location.href`); u != site.base+"ui/" {
			t.Errorf("the page navigated to %s", u)
		}
		if n := eval[int](t, b, `document.querySelector("#log li.user .text").textContent.length`); n != size {
			t.Errorf("the sent message shows %d characters, want %d", n, size)
		}
		if n := eval[int](t, b, `document.querySelector("#prompt").value.length`); n != 0 {
			t.Errorf("the prompt holds %d characters after sending", n)
		}
		if e := eval[string](t, b, `document.querySelector(".boot.error")?.textContent ?? ""`); e != "" {
			t.Errorf("the page says %q", e)
		}
		const tooLong = `document.querySelector("#log li.assistant .error-sentence")?.textContent ?? ""`
		if e := eval[string](t, b, tooLong); !strings.HasPrefix(e, "The message is too long for this model") {
			t.Errorf("the reply to 100 KB says %q, want that the message is too long", e)
		}
		t.Logf("reply to 100 KB: %q", eval[string](t, b, tooLong))
		saved := eval[int](t, b, `JSON.parse(localStorage.getItem("mode.chat.v1")).messages[0].content.length`)
		if saved != size {
			t.Errorf("the saved conversation holds %d characters of the message, want %d", saved, size)
		}

		// The page goes on working: a short message gets a reply. The
		// session leaves the long message out, and clamps a max tokens
		// that the context cannot hold; the reply says both and the long
		// message is marked as out of the model's view.
		setNumber(t, b, "max-tokens", 5000)
		do(t, b, "type", chromedp.SendKeys("#prompt", "Once upon a time"))
		pressEnter(t, b)
		waitFor(t, b, "a reply after the paste", idle+` && document.querySelectorAll("#log li.assistant").length === 2`, 120*time.Second)
		note := eval[string](t, b, lastNote)
		t.Logf("the next reply: %q, note %q", eval[string](t, b, lastReply), note)
		if !strings.Contains(note, "1 oldest messages were left out") || !strings.Contains(note, "Max tokens 5000 was clamped") {
			t.Errorf("the reply's note is %q, want the message left out and max tokens clamped", note)
		}
		marked := eval[[]bool](t, b, `[...document.querySelectorAll("#log li")].map((li) => li.classList.contains("out-of-context"))`)
		if fmt.Sprint(marked) != "[true false false false]" {
			t.Errorf("out of the model's view: %v, want only the long message", marked)
		}
		if tag := eval[string](t, b, `document.querySelector("#log li.user .context-tag")?.textContent ?? ""`); tag == "" {
			t.Error("the long message has no visible mark")
		}
		screenshot(t, b, site.artefacts, "chat-paste.png")
		setNumber(t, b, "max-tokens", 20)
		do(t, b, "clear", chromedp.Click("#clear"))
		waitFor(t, b, "the clear", `document.querySelectorAll("#log li").length === 0`, 5*time.Second)
	})

	t.Run("errors are one sentence, and the page recovers", func(t *testing.T) {
		const sentence = `(document.querySelector("#load-error .error-sentence")?.textContent ?? "")`
		const details = `(document.querySelector("#load-error pre")?.textContent ?? "")`
		setModelURL := func(u string) {
			t.Helper()
			eval[bool](t, b, fmt.Sprintf(`(() => {
				const e = document.querySelector("#model-url");
				e.value = %q;
				e.dispatchEvent(new Event("change", {bubbles: true}));
				return true;
			})()`, u))
		}
		loadFails := func(what, want string) {
			t.Helper()
			do(t, b, "load", chromedp.Click("#load"))
			waitFor(t, b, what, idle+` && `+sentence+` !== ""`, 60*time.Second)
			got, chain := eval[string](t, b, sentence), eval[string](t, b, details)
			t.Logf("%s: %q; details %q", what, got, chain)
			if got != want {
				t.Errorf("%s: the page says %q, want %q", what, got, want)
			}
			if status := eval[string](t, b, `document.querySelector("#status").textContent`); status != want {
				t.Errorf("%s: the status line says %q, want %q", what, status, want)
			}
			if chain == "" || chain == got {
				t.Errorf("%s: the details are %q, want the error chain", what, chain)
			}
		}

		if !eval[bool](t, b, `document.querySelector("#settings").open`) {
			do(t, b, "open the settings", chromedp.Click("#settings summary"))
		}
		setModelURL("/packs/nope/manifest.json")
		loadFails("a pack that is not there", "No model at that address (404).")

		// A server that stops while the model downloads. Without the
		// cache, so that every shard comes from it, throttled so that
		// the download is still going when it stops.
		do(t, b, "no cache", chromedp.Click("#cache"))
		other, stop := site.startStoppable(t, "--throttle", "100kB")
		setModelURL(other + "packs/stories260K/manifest.json")
		do(t, b, "load", chromedp.Click("#load"))
		waitFor(t, b, "the download to start", `(document.querySelector("#progress-text")?.textContent ?? "").includes(" of ")`, 30*time.Second)
		if p := eval[string](t, b, `document.querySelector("#progress-text").textContent`); !strings.HasPrefix(p, "Downloading the model") {
			t.Errorf("while the core downloads the progress says %q", p)
		} else {
			t.Logf("downloading: %q", p)
		}
		stop()
		waitFor(t, b, "the load to fail", idle+` && `+sentence+` !== ""`, 60*time.Second)
		if got := eval[string](t, b, sentence); got != "The model server stopped answering; check the connection and try again." {
			t.Errorf("server stopped mid-download: the page says %q; details %q", got, eval[string](t, b, details))
		}
		do(t, b, "cache again", chromedp.Click("#cache"))
		do(t, b, "open the details", chromedp.Click("#load-error summary"))
		waitFor(t, b, "the details to open", `document.querySelector("#load-error details").open`, 5*time.Second)
		screenshot(t, b, site.artefacts, "chat-error.png")

		// A good pack loads and answers afterwards.
		pick(t, b, "/packs/stories260K/manifest.json")
		do(t, b, "load", chromedp.Click("#load"))
		waitFor(t, b, "the model to load", `document.querySelector("#status").textContent === "Model loaded."`, 60*time.Second)
		if e := eval[string](t, b, sentence); e != "" {
			t.Errorf("after a good load the page still says %q", e)
		}
		do(t, b, "type", chromedp.SendKeys("#prompt", "Once upon a time"))
		pressEnter(t, b)
		waitFor(t, b, "a reply", idle+` && `+lastReply+`.length > 0`, 60*time.Second)
		do(t, b, "clear", chromedp.Click("#clear"))
		waitFor(t, b, "the clear", `document.querySelectorAll("#log li").length === 0`, 5*time.Second)
	})

	t.Run("HTML in prompts and model output stays text", func(t *testing.T) {
		const prompt = `<img src=x onerror=alert(1)>`
		const output = `<img src=y onerror=alert(2)><script>alert(3)</script><b>bold</b>`
		// Replace mode.js with a stand-in whose model answers with HTML;
		// the page reads window.mode when it loads a model.
		do(t, b, "reload", chromedp.Navigate(site.base+"ui/"))
		waitFor(t, b, "the chat to render", `document.querySelector("#prompt") !== null && window.mode !== undefined`, 30*time.Second)
		eval[bool](t, b, fmt.Sprintf(`(() => {
			const pieces = %q.match(/.{1,7}/gs);
			const engine = {
				chat: {completions: {create: async () => ({async *[Symbol.asyncIterator]() {
					for (const p of pieces) yield {choices: [{delta: {content: p}, finish_reason: null}]};
					yield {choices: [{delta: {}, finish_reason: "stop"}]};
				}})}},
				interrupt: async () => {}, unload: async () => {},
				stats: async () => ({loaded: true, prefillTokensPerSecond: 1, decodeTokensPerSecond: 1}),
			};
			window.mode = {create: async () => engine};
			return true;
		})()`, output))
		do(t, b, "type", chromedp.SendKeys("#prompt", prompt))
		pressEnter(t, b)
		waitFor(t, b, "the stand-in's reply", idle+` && `+lastReply+` === `+fmt.Sprintf("%q", output), 30*time.Second)
		user := eval[string](t, b, `document.querySelector("#log li.user .text").textContent`)
		if user != prompt {
			t.Errorf("the prompt shows as %q, want the text %q", user, prompt)
		}
		if n := eval[int](t, b, `document.querySelectorAll("#log img, #log script, #log b").length`); n != 0 {
			t.Errorf("%d elements were created from message text", n)
		}
		time.Sleep(300 * time.Millisecond) // an onerror would fire by now
		if d := dlg.opened(); len(d) != 0 {
			t.Errorf("dialogs opened: %q", d)
		}
		do(t, b, "clear", chromedp.Click("#clear"))
	})

	t.Run("the log follows the reply unless scrolled up", func(t *testing.T) {
		// A stand-in engine streams numbered lines as fast as the test
		// lets it (window.allow), so each check sees a known amount.
		do(t, b, "reload", chromedp.Navigate(site.base+"ui/"))
		waitFor(t, b, "the chat to render", `document.querySelector("#prompt") !== null && window.mode !== undefined`, 30*time.Second)
		eval[bool](t, b, `(() => {
			window.allow = 0;
			const engine = {
				chat: {completions: {create: async () => ({async *[Symbol.asyncIterator]() {
					for (let i = 1; i <= 300; i++) {
						while (i > window.allow) await new Promise((r) => setTimeout(r, 5));
						yield {choices: [{delta: {content: "line " + i + "\n"}, finish_reason: null}]};
					}
					yield {choices: [{delta: {}, finish_reason: "stop"}]};
				}})}},
				interrupt: async () => {}, unload: async () => {},
				stats: async () => ({loaded: true}),
			};
			window.mode = {create: async () => engine};
			return true;
		})()`)
		const gap = `(() => { const l = document.querySelector("#log"); return l.scrollHeight - l.scrollTop - l.clientHeight; })()`
		upTo := func(n int) {
			t.Helper()
			eval[bool](t, b, fmt.Sprintf(`(window.allow = %d, true)`, n))
			waitFor(t, b, fmt.Sprintf("line %d", n), lastReply+fmt.Sprintf(`.includes("line %d\n")`, n), 10*time.Second)
			time.Sleep(100 * time.Millisecond) // the render after the last chunk
		}
		do(t, b, "type", chromedp.SendKeys("#prompt", "count"))
		pressEnter(t, b)
		upTo(80)
		if g := eval[float64](t, b, gap); g > 30 {
			t.Errorf("at the bottom while streaming: %.0f px below the view, want the newest line in view", g)
		}
		if h := eval[float64](t, b, `document.querySelector("#log").scrollHeight - document.querySelector("#log").clientHeight`); h < 200 {
			t.Fatalf("the log overflows by %.0f px only: the check proves nothing", h)
		}
		eval[bool](t, b, `(document.querySelector("#log").scrollTop = 0, true)`)
		upTo(160)
		if top := eval[float64](t, b, `document.querySelector("#log").scrollTop`); top != 0 {
			t.Errorf("scrolled up to read, the log moved to %.0f px while the reply grew", top)
		}
		eval[bool](t, b, `(() => { const l = document.querySelector("#log"); l.scrollTop = l.scrollHeight; return true; })()`)
		upTo(300)
		waitFor(t, b, "the end of the reply", idle, 10*time.Second)
		if g := eval[float64](t, b, gap); g > 30 {
			t.Errorf("back at the bottom: %.0f px below the view after the reply ended, want the newest line in view", g)
		}
		do(t, b, "clear", chromedp.Click("#clear"))
	})

	t.Run("usable at 360 px", func(t *testing.T) {
		do(t, b, "viewport", chromedp.EmulateViewport(360, 780))
		do(t, b, "reload", chromedp.Navigate(site.base+"ui/"))
		waitFor(t, b, "the chat to render", `document.querySelector("#prompt") !== null`, 30*time.Second)
		if !eval[bool](t, b, `document.querySelector("#settings").open`) {
			do(t, b, "open the settings", chromedp.Click("#settings summary"))
		}
		if w := eval[int](t, b, `document.documentElement.scrollWidth`); w > 360 {
			t.Errorf("the page is %d px wide in a 360 px viewport", w)
		}
		unlabelled := eval[[]string](t, b, `[...document.querySelectorAll("input, select, textarea")]
			.filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")).map((e) => e.id)`)
		if len(unlabelled) != 0 {
			t.Errorf("controls without a label: %v", unlabelled)
		}
		screenshot(t, b, site.artefacts, "chat-360.png")
	})
}
