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

function fatal(message) {
  self.postMessage({ id: 0, type: "fatal", error: { code: "worker_failed", message } });
}

try {
  await import(execURL);
  const go = new self.Go();
  const { instance } = await WebAssembly.instantiateStreaming(nativeFetch(wasmURL), go.importObject);
  go.run(instance).then(
    () => fatal("the mode runtime exited; create the engine again"),
    (err) => fatal(`the mode runtime crashed: ${err?.message ?? err}; create the engine again`),
  );
} catch (err) {
  fatal(`could not start the mode runtime from ${wasmURL}: ${err?.message ?? err} ` +
    "(is mode.wasm built and served as application/wasm?)");
}
