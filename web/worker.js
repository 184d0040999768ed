// worker.js runs mode.wasm inside a dedicated Web Worker (created by
// mode.js with {type: "module"}). The page's messages go to the Go side as
// JSON text; the Go side posts its replies itself.
//
// Query parameters: wasm (URL of mode.wasm), exec (URL of wasm_exec.js),
// simd ("0": keep the pure-Go kernels even where SIMD128 works).
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

// Messages that arrive before the Go side is running wait here.
const queue = [];
let handle = null;
self.onmessage = (e) => {
  if (handle) handle(JSON.stringify(e.data));
  else queue.push(e.data);
};

// Called by the Go side once it listens.
self.modeRegister = (h) => {
  handle = h;
  for (const m of queue.splice(0)) h(JSON.stringify(m));
};

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
  go.run(instance).then(
    () => fatal(`the mode runtime exited${lastWords()}; create the engine again`),
    (err) => fatal(`the mode runtime crashed: ${err?.message ?? err}; create the engine again`),
  );
} catch (err) {
  fatal(`could not start the mode runtime from ${wasmURL}: ${err?.message ?? err} ` +
    "(is mode.wasm built and served as application/wasm?)");
}
