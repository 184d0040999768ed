package e2e

import (
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// hostPage is a third party's page: it includes the widget from the
// devserver's origin with one tag and, on demand, hostile CSS.
var hostPage = template.Must(template.New("host").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A shop</title>
{{if .Aggressive}}<style>
  * { color: red !important; font-size: 40px !important; font-family: serif !important; line-height: 3 !important;
      background: yellow !important; display: block; box-sizing: content-box !important; }
  button, textarea { display: none !important; }
  head, style, script { display: none !important; }
</style>{{end}}
</head><body>
<h1 id="probe">Welcome to the shop</h1>
<p id="para">Some text and a <button id="hostbutton">button</button> of the host page.</p>
{{if .Widget}}<script src="{{.Src}}" data-model="{{.Model}}" data-title="Ask me" defer></script>{{end}}
</body></html>`))

// startHost serves hostPage on a second loopback port, so the widget runs
// on a page of another origin than its script.
func startHost(t *testing.T, widgetBase string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		q := r.URL.Query()
		model := q.Get("model") // a path under the widget's origin
		if model == "" {
			model = "packs/stories260K/manifest.json"
		}
		hostPage.Execute(w, map[string]any{
			"Widget": q.Get("widget") != "0", "Aggressive": q.Get("aggressive") == "1",
			"Src": widgetBase + "widget.js", "Model": widgetBase + model,
		})
	})}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("host page server: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// hostStyles are computed styles of the host page's own elements.
const hostStyles = `JSON.stringify(["probe", "para", "hostbutton"].map((id) => {
	const s = getComputedStyle(document.getElementById(id));
	return [id, s.color, s.fontSize, s.fontFamily, s.margin, s.padding, s.display, s.background, s.lineHeight, s.boxSizing];
}))`

// widgetStyles are computed styles of elements inside the widget's shadow root.
const widgetStyles = `(() => {
	const r = document.querySelector("mode-widget").shadowRoot;
	const pick = (sel) => { const s = getComputedStyle(r.querySelector(sel)); return {color: s.color, fontSize: s.fontSize, display: s.display, background: s.backgroundColor}; };
	return {launcher: pick(".launcher"), input: pick("textarea"), log: pick("ol"), send: pick(".send")};
})()`

type widgetStyle struct {
	Color, FontSize, Display, Background string
}

func TestWidget(t *testing.T) {
	chromium := findChromium(t)
	site := startUISite(t)
	host := startHost(t, site.base)
	b := openBrowser(t, chromium, site.base+"index.html") // openBrowser waits for mode.js: use the demo page, then leave
	dlg := watchDialogs(t, b.ctx)
	do(t, b, "viewport", chromedp.EmulateViewport(1024, 768))

	do(t, b, "open the host page without the widget", chromedp.Navigate(host+"?widget=0"))
	without := eval[string](t, b, hostStyles)

	do(t, b, "open the host page", chromedp.Navigate(host))
	waitFor(t, b, "the widget", `window.modeWidget !== undefined && document.querySelector("mode-widget") !== null`, 10*time.Second)
	if with := eval[string](t, b, hostStyles); with != without {
		t.Errorf("the widget changed the host page's styles:\nwithout %s\n   with %s", without, with)
	}

	t.Run("opens and answers", func(t *testing.T) {
		shadow := `document.querySelector("mode-widget").shadowRoot`
		// A real mouse click at the launcher, which lives in the shadow root.
		at := eval[[]float64](t, b, `(() => { const r = `+shadow+`.querySelector(".launcher").getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`)
		do(t, b, "click the launcher", chromedp.MouseClickXY(at[0], at[1]))
		waitFor(t, b, "the panel", `!`+shadow+`.querySelector(".panel").hidden`, 5*time.Second)
		reply := eval[string](t, b, `modeWidget.ask("Once upon a time")`)
		if strings.TrimSpace(reply) == "" {
			t.Fatal("the widget answered nothing")
		}
		shown := eval[string](t, b, shadow+`.querySelector("li.assistant:last-child").textContent`)
		if shown != reply {
			t.Errorf("the widget shows %q, ask returned %q", shown, reply)
		}
		t.Logf("widget answer: %q", reply)
		screenshot(t, b, site.artefacts, "widget.png")
		if cached := eval[int](t, b, `(async () => {
			const f = document.querySelector("mode-widget").shadowRoot.querySelector("iframe");
			return (await (await f.contentWindow.caches.open("mode-shards-v1")).keys()).length;
		})().catch(() => -1)`); cached == 0 {
			t.Errorf("the widget's engine stored no shards in its origin's Cache Storage")
		}
	})

	t.Run("HTML stays text", func(t *testing.T) {
		const prompt = `<img src=x onerror=alert(1)>`
		eval[string](t, b, fmt.Sprintf(`modeWidget.ask(%q)`, prompt))
		shadow := `document.querySelector("mode-widget").shadowRoot`
		if n := eval[int](t, b, shadow+`.querySelectorAll("ol img").length`); n != 0 {
			t.Errorf("the prompt made %d <img> elements", n)
		}
		users := eval[[]string](t, b, `[...`+shadow+`.querySelectorAll("li.user")].map((e) => e.textContent)`)
		if len(users) == 0 || users[len(users)-1] != prompt {
			t.Errorf("user messages %q, want the last to be %q as text", users, prompt)
		}
		time.Sleep(300 * time.Millisecond)
		if d := dlg.opened(); len(d) != 0 {
			t.Errorf("dialogs opened: %q", d)
		}
	})

	t.Run("hostile page CSS does not reach inside", func(t *testing.T) {
		do(t, b, "open the hostile host page", chromedp.Navigate(host+"?aggressive=1"))
		waitFor(t, b, "the widget", `window.modeWidget !== undefined && document.querySelector("mode-widget") !== null`, 10*time.Second)
		eval[bool](t, b, `(modeWidget.open(), true)`)
		got := eval[map[string]widgetStyle](t, b, widgetStyles)
		probe := eval[string](t, b, `getComputedStyle(document.getElementById("probe")).color`)
		if probe != "rgb(255, 0, 0)" {
			t.Fatalf("the hostile CSS is not in effect (probe colour %s): the check would prove nothing", probe)
		}
		for name, s := range got {
			if s.Color == "rgb(255, 0, 0)" || s.FontSize == "40px" || s.Display == "none" || s.Background == "rgb(255, 255, 0)" {
				t.Errorf("the host page's CSS reached the widget's %s: %+v", name, s)
			}
		}
		if got["input"].FontSize != "14px" {
			t.Errorf("the widget's text area has font-size %s, want its own 14px", got["input"].FontSize)
		}
		t.Logf("inside the widget under hostile CSS: %+v", got)
		screenshot(t, b, site.artefacts, "widget-hostile.png")
	})

	shadow := `document.querySelector("mode-widget").shadowRoot`
	// visit opens the host page with the widget on model and asks it
	// something; it returns the reply, the status line and the load note.
	visit := func(t *testing.T, model string) (reply, status, note string) {
		t.Helper()
		do(t, b, "open the host page on "+model, chromedp.Navigate(host+"?model="+url.QueryEscape(model)))
		waitFor(t, b, "the widget", `window.modeWidget !== undefined && document.querySelector("mode-widget") !== null`, 10*time.Second)
		reply = eval[string](t, b, `modeWidget.ask("Once upon a time").catch((e) => "error: " + e.message)`)
		status = eval[string](t, b, shadow+`.querySelector(".status").textContent`)
		note = eval[string](t, b, `(() => { const n = `+shadow+`.querySelector(".note"); return n.hidden ? "" : n.textContent; })()`)
		return reply, status, note
	}

	t.Run("a broken chat template is a load note", func(t *testing.T) {
		reply, status, note := visit(t, "packs/badtemplate/manifest.json")
		if strings.HasPrefix(reply, "error: ") {
			t.Fatalf("the widget failed on a pack with a broken template: %s (status %q)", reply, status)
		}
		if !strings.Contains(note, "chat template does not parse") || !strings.Contains(note, "format instead") {
			t.Errorf("the widget's note is %q, want it to say the template does not parse and which format is used", note)
		}
		screenshot(t, b, site.artefacts, "widget-template-note.png")
	})

	t.Run("a pinned manifest URL", func(t *testing.T) {
		p := strings.TrimPrefix(pinned(t, filepath.Join(site.packs, "stories260K"), "/packs/stories260K/manifest.json"), "/")
		reply, status, note := visit(t, p)
		if strings.HasPrefix(reply, "error: ") || strings.TrimSpace(reply) == "" {
			t.Errorf("the widget on a pinned URL answered %q (status %q)", reply, status)
		}
		if note != "" {
			t.Errorf("a pack with a working template shows the note %q", note)
		}
		reply, status, _ = visit(t, "packs/stories260K/manifest.json#sha256="+strings.Repeat("ab", 32))
		if !strings.HasPrefix(reply, "error: ") || !strings.Contains(status, "pins") {
			t.Errorf("a wrong pin: reply %q, status %q; want the pin mismatch", reply, status)
		}
	})
}
