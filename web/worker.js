// worker.js runs mode.wasm inside a dedicated Web Worker (created by
// mode.js with {type: "module"}). The page's messages go to the Go side as
// JSON text; the Go side posts its replies itself.
//
// Query parameters: wasm (URL of mode.wasm), exec (URL of wasm_exec.js).

const params = new URL(self.location.href).searchParams;
const wasmURL = params.get("wasm") || new URL("mode.wasm", self.location.href).href;
const execURL = params.get("exec") || new URL("wasm_exec.js", self.location.href).href;

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

try {
  await import(execURL);
  const go = new self.Go();
  const result = await WebAssembly.instantiateStreaming(nativeFetch(wasmURL), go.importObject);
  // The WebGPU binding (cogentcore/webgpu) hands byte slices to
  // queue.writeBuffer as views of the wasm memory, which it finds here.
  self.wasm = result;
  const { instance } = result;
  go.run(instance).then(
    () => fatal(`the mode runtime exited${lastWords()}; create the engine again`),
    (err) => fatal(`the mode runtime crashed: ${err?.message ?? err}; create the engine again`),
  );
} catch (err) {
  fatal(`could not start the mode runtime from ${wasmURL}: ${err?.message ?? err} ` +
    "(is mode.wasm built and served as application/wasm?)");
}
