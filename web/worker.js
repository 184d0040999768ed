// worker.js runs mode.wasm inside a dedicated Web Worker (created by
// mode.js with {type: "module"}). The page's messages go to the Go side as
// JSON text; the Go side posts its replies itself.
//
// Query parameters: wasm (URL of mode.wasm), exec (URL of wasm_exec.js),
// simd ("0": keep the pure-Go kernels even where SIMD128 works), role
// ("peer": an expert peer, which this worker starts itself for a second
// core; see modePeers).
//
// They and the defaults come from import.meta.url, not self.location: for
// a page of another origin mode.js starts the worker from a blob: URL that
// imports this module, and self.location is then the blob.

const here = import.meta.url;
const params = new URL(here).searchParams;
const wasmURL = params.get("wasm") || new URL("mode.wasm", here).href;
const execURL = params.get("exec") || new URL("wasm_exec.js", here).href;

// The runtime keeps shards in Cache Storage itself (or, with cache "none",
// deliberately nowhere): the HTTP cache would store them a second time and
// hide downloads, so every fetch from this worker bypasses it.
const nativeFetch = self.fetch.bind(self);
self.fetch = (input, init) => nativeFetch(input, { ...init, cache: "no-store" });

const role = params.get("role") === "peer" ? "peer" : "engine";
self.modeRole = role; // read by the Go side: serve requests, or be a peer

// Messages that arrive before the Go side is running wait here.
const queue = [];
let handle = null;
if (role === "engine") {
  self.onmessage = (e) => {
    if (handle) handle(JSON.stringify(e.data));
    else queue.push(e.data);
  };
  // Called by the Go side once it listens.
  self.modeRegister = (h) => {
    handle = h;
    for (const m of queue.splice(0)) h(JSON.stringify(m));
  };
}

// More than one core. Go on js/wasm runs on one thread, so the engine
// worker starts expert peers: each a Web Worker running mode.wasm in the
// "peer" role (a cpu.PeerServer), holding a share of every routed
// expert's hidden units, which it computes for each sparse layer while
// the engine computes its own share (runtime/cpu/peers.go). Messages
// (expert shares, requests) and answers go through one SharedArrayBuffer
// per peer, data, a message in chunks of at most its size, and a control
// word ctl[0]: FREE (the engine may write), REQ (a chunk of ctl[1] bytes
// of a ctl[2]-byte message is in), ANS (the peer's answer, ctl[1] bytes,
// is in; the engine sets FREE once it took it) or ERR (an error's text,
// ctl[1] bytes: final). Both sides block in Atomics.wait, so an exchange
// needs no event loop turn and no Go callback: the peer's Go side loops
// waiting for REQ (runPeer), and the engine waits for the peer with a
// timeout, so a dead or stalled peer is an error, never a hang. Shared
// memory needs a cross-origin isolated page (COOP and COEP headers);
// without it the engine runs on one worker and says so.
const FREE = 0, REQ = 1, ANS = 2, ERR = 3;
let wasmMemory = null; // this worker's Go instance's memory
const peers = [];
const enc = new TextEncoder();
const dec = new TextDecoder();

// startPeer starts this module again in the peer role, from a blob: URL
// when this worker's origin is not the module's (a page of another origin
// started it so: see mode.js).
function startPeer() {
  const u = new URL(here);
  u.searchParams.set("role", "peer");
  if (u.origin === self.location.origin) return new Worker(u, { type: "module" });
  const blob = new Blob([`import ${JSON.stringify(u.href)};\n`], { type: "text/javascript" });
  const url = URL.createObjectURL(blob);
  const w = new Worker(url, { type: "module" });
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return w;
}

function peerFailed(p, message) {
  if (!p.dead) p.dead = message;
}

// peerError is peer p's error text from the shared buffer, now final.
function peerError(p) {
  peerFailed(p, dec.decode(new Uint8Array(p.data, 0, p.ctl[1]).slice()));
  return p.dead;
}

// waitWhile blocks while peer p's control word is one of states, for at
// most ms in all: the word, or "" when the time is up.
function waitWhile(p, states, ms) {
  const end = performance.now() + ms;
  for (;;) {
    const s = Atomics.load(p.ctl, 0);
    if (!states.includes(s)) return s;
    const left = end - performance.now();
    if (left <= 0) return "";
    Atomics.wait(p.ctl, 0, s, left);
  }
}

const peerStartMillis = 60000;

self.modePeers = {
  // start starts want-1 peers (want 0: 2 when the page is cross-origin
  // isolated and has two cores or more, else 1) whose answers take at
  // most answerBytes; it resolves to {workers, note}.
  async start(want, answerBytes) {
    const cores = navigator.hardwareConcurrency || 1;
    const shared = self.crossOriginIsolated === true && typeof SharedArrayBuffer === "function";
    const chosen = want === 0;
    if (chosen) want = shared && cores >= 2 ? 2 : 1;
    if (want <= 1) {
      if (!chosen) return { workers: 1, note: "one worker, as asked" };
      if (!shared) {
        return { workers: 1, note: "one worker: the page is not cross-origin isolated (it needs the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp), so workers cannot share memory" };
      }
      return { workers: 1, note: `one worker: navigator.hardwareConcurrency is ${cores}` };
    }
    if (!shared) {
      return { workers: 1, note: `one worker, not ${want}: the page is not cross-origin isolated (it needs the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp), so workers cannot share memory` };
    }
    // A request is an answer's size and the routing (a few bytes a slot)
    // more; bigger ones (and expert shares) go in chunks.
    const size = Math.max(1 << 20, answerBytes + (answerBytes >> 2) + 4096);
    const started = [];
    try {
      for (let k = 0; k < want - 1; k++) {
        const data = new SharedArrayBuffer(size);
        const p = {
          worker: startPeer(),
          ctl: new Int32Array(new SharedArrayBuffer(16)),
          data,
          view: new Uint8Array(data),
          dead: "",
        };
        started.push(p);
        p.ready = new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`expert worker ${k + 1} did not start in ${peerStartMillis / 1000} s`)), peerStartMillis);
          p.worker.onmessage = (e) => {
            const m = e.data;
            if (m?.type === "ready") { clearTimeout(timer); resolve(); }
            if (m?.type === "fatal") { clearTimeout(timer); peerFailed(p, m.error?.message ?? "it failed"); reject(new Error(`expert worker ${k + 1}: ${p.dead}`)); }
          };
          p.worker.onerror = (e) => {
            clearTimeout(timer);
            peerFailed(p, `it failed: ${e.message || "its script could not be loaded"}`);
            reject(new Error(`expert worker ${k + 1}: ${p.dead}`));
          };
        });
        p.worker.postMessage({ type: "init", ctl: p.ctl, data: p.data });
      }
      await Promise.all(started.map((p) => p.ready));
    } catch (err) {
      for (const p of started) p.worker.terminate();
      return { workers: 1, note: `one worker: ${err?.message ?? err}` };
    }
    peers.push(...started);
    return { workers: want, note: `${want} workers (cross-origin isolated, ${cores} cores): routed experts are split between them` };
  },
  // view is peer k's shared buffer, which the Go side writes messages
  // into and reads answers from.
  view(k) { return peers[k].view; },
  // claim waits (at most ms) until peer k took the last chunk (or the
  // engine its answer) and makes the buffer the engine's: "" or why not.
  // (The texts returned to the Go side do not name the peer: it does.)
  claim(k, ms) {
    const p = peers[k];
    if (!p) return "not running";
    if (p.dead) return p.dead;
    switch (waitWhile(p, [REQ], ms)) {
      case "": peerFailed(p, `did not answer in ${ms / 1000} s`); return p.dead;
      case ERR: return peerError(p);
    }
    Atomics.store(p.ctl, 0, FREE);
    return "";
  },
  // send hands peer k the chunk of n bytes the Go side put in its buffer,
  // of a message of total bytes: "" or why not.
  send(k, n, total) {
    const p = peers[k];
    if (!p) return "not running";
    if (p.dead) return p.dead;
    p.ctl[1] = n;
    p.ctl[2] = total;
    Atomics.store(p.ctl, 0, REQ);
    Atomics.notify(p.ctl, 0);
    return "";
  },
  // wait blocks (at most ms) until peer k answered: the answer's length
  // (the answer is at the start of its buffer), or an error's text.
  wait(k, ms) {
    const p = peers[k];
    if (!p) return "not running";
    if (p.dead) return p.dead;
    switch (waitWhile(p, [FREE, REQ], ms)) {
      case ANS: return p.ctl[1];
      case ERR: return peerError(p);
    }
    peerFailed(p, `did not answer in ${ms / 1000} s`);
    return p.dead;
  },
  stop() {
    for (const p of peers.splice(0)) p.worker.terminate();
  },
  // memory is the size of this instance's wasm memory and of each peer's
  // (as of its last answer), in bytes: a diagnostic for benchmarks, since
  // a peer's own thread never returns to where DevTools could ask it.
  memory() {
    return { engine: wasmMemory?.buffer.byteLength ?? 0, peers: peers.map((p) => p.ctl[3]) };
  },
};

// The peer role: once it has the shared buffers and its Go side has
// registered, the Go side loops on modePeerLink (runPeer in
// cmd/wasm/peers_js.go) and this worker's event loop runs no more. A
// crash or exit of the Go side (seen here, once its loop is gone) is put
// into the buffer as an error.
if (role === "peer") {
  let ctl = null, data = null, start = null;
  const go = () => {
    if (!ctl || !start) return;
    self.modePeerLink = {
      view: new Uint8Array(data),
      // next waits for a chunk: its length (the message's in total()).
      next() {
        for (;;) {
          const s = Atomics.load(ctl, 0);
          if (s === REQ) return ctl[1];
          // Idle between generations: wake now and then, never needed.
          Atomics.wait(ctl, 0, s, 10000);
        }
      },
      total() { return ctl[2]; },
      ack() { settle(FREE, 0); },
      answer(n) { settle(ANS, n); },
      fail(n) { settle(ERR, n); },
    };
    self.postMessage({ type: "ready" });
    const s = start;
    start = null;
    setTimeout(() => s(), 0);
  };
  const settle = (state, n) => {
    ctl[1] = n;
    ctl[3] = wasmMemory?.buffer.byteLength ?? 0; // for modePeers.memory
    Atomics.store(ctl, 0, state);
    Atomics.notify(ctl, 0);
  };
  self.onmessage = (e) => {
    const m = e.data;
    if (m.type === "init") {
      ctl = m.ctl;
      data = m.data;
      go();
    }
  };
  self.modePeerRegister = (f) => {
    start = f;
    go();
  };
  self.modePeerDied = (message) => {
    if (!ctl) return;
    const b = enc.encode(message).slice(0, data.byteLength);
    new Uint8Array(data).set(b);
    settle(ERR, b.length);
  };
}

// The Go runtime prints a panic to the console of this worker, which the
// page cannot see: keep the last lines so that a crash can say what it was.
const tail = [];
const consoleLog = console.log.bind(console);
console.log = (...args) => {
  tail.push(args.join(" "));
  if (tail.length > 12) tail.shift();
  consoleLog(...args);
};
const lastWords = () => {
  const i = tail.findIndex((l) => /^(panic|fatal error)/.test(l));
  return i < 0 ? "" : ` (${tail.slice(i).join(" | ")})`;
};

function fatal(message) {
  self.postMessage({ id: 0, type: "fatal", error: { code: "worker_failed", message } });
}

// SIMD128 (fixed-width SIMD, in every current browser's WebAssembly): a
// one-function module using i8x16.splat and i8x16.popcnt validates only
// where it is supported.
const hasSIMD = (() => {
  try {
    return WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0,
      10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]));
  } catch {
    return false;
  }
})();

// modesimd is the Go side's door to its SIMD128 kernels
// (internal/wasmsimd): on first use it hands load() the kernel module's
// bytes, which import the Go instance's memory, so the kernels work on the
// engine's buffers in place; the kernel calls forward to that instance.
// load's answer: 1 loaded, 0 not offered (the page passed simd=0), -1 no
// SIMD128 here, -2 the module failed. The Go side falls back to its own
// kernels on anything but 1 and says why in the load result.
function simdImports(memory) {
  let k = null;
  return {
    load(p, n) {
      if (params.get("simd") === "0") return 0;
      if (!hasSIMD) return -1;
      try {
        const bytes = new Uint8Array(memory().buffer, p, n).slice();
        k = new WebAssembly.Instance(new WebAssembly.Module(bytes), { go: { mem: memory() } }).exports;
        return 1;
      } catch (err) {
        console.warn(`mode: SIMD128 kernels unavailable: ${err?.message ?? err}`);
        return -2;
      }
    },
    q8_0: (dst, ds, wd, wq, xd, xq, rows, nb, trows) => k.q8_0(dst, ds, wd, wq, xd, xq, rows, nb, trows),
    q4_0: (dst, ds, wd, wq, xd, xq, rows, nb, trows) => k.q4_0(dst, ds, wd, wq, xd, xq, rows, nb, trows),
    q4_k: (dst, ds, dm, sc, mn, qs, xd, g, xq, rows, nb, trows) => k.q4_k(dst, ds, dm, sc, mn, qs, xd, g, xq, rows, nb, trows),
    f32: (dst, ds, w, x, rows, n, trows) => k.f32(dst, ds, w, x, rows, n, trows),
    f16: (dst, ds, w, x, rows, n, trows) => k.f16(dst, ds, w, x, rows, n, trows),
    scores: (dst, q, kc, n, hd, stride) => k.scores(dst, q, kc, n, hd, stride),
    wsum: (o, a, v, n, hd, stride) => k.wsum(o, a, v, n, hd, stride),
    exp: (dst, x, n, m) => k.exp(dst, x, n, m),
    silu: (g, u, n) => k.silu(g, u, n),
    q16: (q, d, g, x, nb) => k.q16(q, d, g, x, nb),
    rmsnorm: (o, x, w, n, eps) => k.rmsnorm(o, x, w, n, eps),
    rmsnorm8: (o, x, w, n, eps) => k.rmsnorm8(o, x, w, n, eps),
    softmax: (x, n, s) => k.softmax(x, n, s),
  };
}

try {
  await import(execURL);
  const go = new self.Go();
  let instance = null;
  go.importObject.modesimd = simdImports(() => instance.exports.mem);
  const result = await WebAssembly.instantiateStreaming(nativeFetch(wasmURL), go.importObject);
  // self.wasm is deliberately not set: cogentcore/webgpu's writeBuffer
  // reads the wasm memory through it, and such views detach when the Go
  // heap grows (webgpu/device_js.go), so the runtime never uses it.
  instance = result.instance;
  wasmMemory = instance.exports.mem;
  go.run(instance).then(
    () => {
      self.modePeerDied?.(`it exited${lastWords()}`);
      fatal(`the mode runtime exited${lastWords()}; create the engine again`);
    },
    (err) => {
      self.modePeerDied?.(`it crashed: ${err?.message ?? err}`);
      fatal(`the mode runtime crashed: ${err?.message ?? err}; create the engine again`);
    },
  );
} catch (err) {
  fatal(`could not start the mode runtime from ${wasmURL}: ${err?.message ?? err} ` +
    "(is mode.wasm built and served as application/wasm?)");
}
