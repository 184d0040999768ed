// widget.js: a chat with a mode model on any web page, from one tag:
//
//   <script src="https://host/widget.js" data-model="https://host/packs/x/manifest.json"
//           data-title="Ask me" defer></script>
//
// It adds a floating button and a chat panel inside a Shadow DOM, so the
// page's CSS and the widget's do not touch each other, and sets
// window.modeWidget = {open(), close(), ask(text) → Promise<reply text>}.
// The model runs in a hidden iframe of this script's origin
// (widget-frame.html), which loads mode.js, its worker and mode.wasm from
// there and keeps shards in that origin's Cache Storage. Plain JS, no
// dependencies. Model text is only ever inserted as text.
(() => {
  "use strict";
  if (window.modeWidget) return; // the tag is on the page twice

  const script = document.currentScript;
  if (!script?.src) {
    console.error("mode widget: load widget.js with a classic <script src=…> tag (not a module)");
    return;
  }
  const frameURL = new URL("widget-frame.html", script.src);
  const origin = frameURL.origin;
  const model = script.dataset.model ? new URL(script.dataset.model, script.src).href : "";
  const title = script.dataset.title || "Ask me";
  const maxTokens = Number(script.dataset.maxTokens) || 200;

  const CSS = `
    /* all: initial with !important beats any page rule, even !important
       ones, on the host: inside a shadow tree the inner rule wins. */
    :host { all: initial !important; }
    .root {
      all: initial; position: fixed; right: 16px; bottom: 16px; z-index: 2147483000;
      font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1f;
      display: flex; flex-direction: column; align-items: flex-end; gap: 8px;
    }
    * { box-sizing: border-box; font: inherit; color: inherit; letter-spacing: normal; text-transform: none; }
    button {
      display: inline-block; margin: 0; padding: 6px 12px; border: 1px solid #c9c9d1; border-radius: 8px;
      background: #fff; color: #1b1b1f; cursor: pointer; line-height: 1.2;
    }
    button:disabled { opacity: .45; cursor: default; }
    button:focus-visible, textarea:focus-visible { outline: 3px solid #2457c5; outline-offset: 2px; }
    .launcher { background: #2457c5; border-color: #2457c5; color: #fff; border-radius: 999px; padding: 10px 16px;
      box-shadow: 0 4px 14px rgba(0,0,0,.25); }
    .panel {
      display: flex; flex-direction: column; width: min(380px, calc(100vw - 32px)); height: min(520px, calc(100vh - 96px));
      background: #f7f7f8; border: 1px solid #c9c9d1; border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.25); overflow: hidden;
    }
    .panel[hidden] { display: none; }
    header { display: flex; align-items: center; justify-content: space-between; padding: 8px 12px; background: #fff;
      border-bottom: 1px solid #e0e0e6; }
    h2 { margin: 0; font-size: 15px; font-weight: 600; }
    .close { padding: 2px 10px; font-size: 18px; line-height: 1; }
    .status { margin: 0; padding: 4px 12px; min-height: 1.4em; font-size: 12px; color: #5d5d66; }
    .note { margin: 0; padding: 4px 12px; font-size: 12px; color: #7a4b00; background: #fff6e0; }
    .note[hidden] { display: none; }
    ol { list-style: none; margin: 0; padding: 8px 12px; flex: 1; overflow-y: auto; display: flex; flex-direction: column; gap: 8px; }
    li { padding: 6px 10px; border-radius: 8px; background: #fff; border: 1px solid #e0e0e6; white-space: pre-wrap;
      overflow-wrap: anywhere; max-width: 100%; }
    li.user { background: #e4ecfb; align-self: flex-end; max-width: 90%; }
    form { display: flex; gap: 6px; padding: 8px; border-top: 1px solid #e0e0e6; background: #fff; align-items: flex-end; }
    textarea { flex: 1; min-width: 0; margin: 0; padding: 6px 8px; resize: none; border: 1px solid #c9c9d1; border-radius: 8px;
      background: #fff; color: #1b1b1f; }
    .send { background: #2457c5; border-color: #2457c5; color: #fff; }
    .vh { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
  `;

  const host = document.createElement("mode-widget");
  const shadow = host.attachShadow({ mode: "open" }); // open: pages may script and test it
  const el = (tag, props = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k.startsWith("aria-") || k === "role" || k === "for") e.setAttribute(k, v);
      else e[k] = v;
    }
    e.append(...children); // strings become text nodes
    return e;
  };
  const style = el("style", { textContent: CSS });
  const launcher = el("button", { type: "button", className: "launcher", "aria-expanded": "false", "aria-controls": "panel" }, title);
  const closeBtn = el("button", { type: "button", className: "close", "aria-label": "Close the chat" }, "×");
  const status = el("p", { className: "status", role: "status", "aria-live": "polite" });
  // What the engine did differently from what the pack asked for (a chat
  // template that does not parse, replaced by a guessed format).
  const note = el("p", { className: "note", role: "note" });
  note.hidden = true;
  const log = el("ol", { className: "log", role: "log", "aria-label": "Conversation" });
  const input = el("textarea", { id: "input", rows: 2, placeholder: "Message (Enter sends)" });
  const send = el("button", { type: "submit", className: "send" }, "Send");
  const stop = el("button", { type: "button", className: "stop", disabled: true }, "Stop");
  const form = el("form", {}, el("label", { className: "vh", for: "input" }, "Message (Enter sends, Shift+Enter adds a line)"), input, send, stop);
  const panel = el("section", { id: "panel", className: "panel", role: "dialog", "aria-label": title, hidden: true },
    el("header", {}, el("h2", {}, title), closeBtn), status, note, log, form);
  shadow.append(style, el("div", { className: "root" }, panel, launcher));

  // The engine: a hidden iframe of the script's origin, started on first use.
  let frame = null, ready = null, nextID = 1;
  const calls = new Map(); // id → {onMessage}
  addEventListener("message", (ev) => {
    if (!frame || ev.source !== frame.contentWindow || ev.origin !== origin || ev.data?.widget !== "mode") return;
    if (ev.data.type === "ready") return ready.resolve();
    calls.get(ev.data.id)?.(ev.data);
  });
  function engine() {
    if (!frame) {
      let resolve;
      ready = new Promise((r) => { resolve = r; });
      ready.resolve = resolve;
      frame = el("iframe", { src: frameURL.href, title: "mode engine", tabIndex: -1 });
      frame.setAttribute("aria-hidden", "true");
      frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
      frame.style.cssText = "display:none";
      shadow.append(frame);
    }
    return ready;
  }
  async function call(msg, onMessage) {
    await engine();
    const id = nextID++;
    return new Promise((resolve, reject) => {
      calls.set(id, (m) => {
        if (m.type === "done") { calls.delete(id); resolve(m); }
        else if (m.type === "error") { calls.delete(id); reject(new Error(m.message)); }
        else onMessage?.(m);
      });
      frame.contentWindow.postMessage({ widget: "mode", id, ...msg }, origin);
    });
  }

  const history = [];
  let busy = false;

  function load() {
    if (!model) {
      status.textContent = "No model: set data-model on the widget's script tag.";
      return Promise.reject(new Error("no data-model"));
    }
    return call({ op: "load", model }, (m) => {
      const p = m.data;
      if (p.phase === "weights") {
        const pct = p.total > 0 ? Math.round((100 * p.bytes) / p.total) : 0;
        status.textContent = `Loading the model: ${pct}% (${p.shards}/${p.shardsTotal} shards)`;
      }
    }).then((done) => {
      if (done.note) {
        note.textContent = `Note: ${done.note}.`; // text, never HTML
        note.hidden = false;
      }
      return done;
    });
  }

  async function ask(text) {
    text = String(text ?? "");
    if (!text.trim()) throw new Error("modeWidget.ask: nothing to ask");
    if (busy) throw new Error("modeWidget.ask: still answering the previous question");
    open();
    busy = true;
    send.disabled = true;
    stop.disabled = false;
    log.append(el("li", { className: "user" }, text));
    const answer = el("li", { className: "assistant" });
    log.append(answer);
    history.push({ role: "user", content: text });
    let reply = "";
    try {
      status.textContent = "Loading the model…";
      await load();
      status.textContent = "Answering…";
      const r = await call({ op: "chat", model, messages: history.slice(), max_tokens: maxTokens }, (m) => {
        if (m.type !== "delta") return;
        reply += m.text;
        answer.textContent = reply; // text, never HTML
        log.scrollTop = log.scrollHeight;
      });
      history.push({ role: "assistant", content: reply });
      status.textContent = r.finish === "abort" ? "Stopped." : "";
      return reply;
    } catch (err) {
      history.pop();
      status.textContent = `Error: ${err.message}`;
      throw err;
    } finally {
      busy = false;
      send.disabled = false;
      stop.disabled = true;
    }
  }

  function open() {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    input.focus();
    engine(); // start fetching the model as soon as the chat is open
    load().catch(() => {});
  }
  function close() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  launcher.addEventListener("click", () => (panel.hidden ? open() : close()));
  closeBtn.addEventListener("click", close);
  panel.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
  stop.addEventListener("click", () => frame?.contentWindow.postMessage({ widget: "mode", op: "interrupt" }, origin));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value;
    if (!text.trim() || busy) return;
    input.value = "";
    ask(text).catch(() => {}); // shown in the status line
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });

  const mount = () => document.body.append(host);
  if (document.body) mount();
  else addEventListener("DOMContentLoaded", mount, { once: true });

  window.modeWidget = { open, close, ask, element: host };
})();
