// mode.js: the page-side API of the mode browser runtime. The model runs
// in a Web Worker (worker.js + mode.wasm); this module only sends requests
// and turns replies into promises and async iterators.
//
//   import * as mode from "./mode.js";
//   const engine = await mode.create({ model: "/packs/NAME/manifest.json", onProgress });
//   const r = await engine.chat.completions.create({ messages: [{ role: "user", content: "Hi" }] });
//   for await (const c of await engine.chat.completions.create({ messages, stream: true })) ...

/** ModeError is an error reported by the runtime; code says which kind. */
export class ModeError extends Error {
  constructor({ code = "internal", message = "unknown error" } = {}) {
    super(message);
    this.name = "ModeError";
    this.code = code;
  }
}

/**
 * create starts a worker and loads a pack.
 * options: model (manifest URL, or hf:ORG/REPO[@REVISION] for a Hugging Face
 * repository read as it is, indexed and converted on load; required),
 * hfEndpoint (the hub for hf: models, default https://huggingface.co),
 * quant (hf: only: "q4_0" default = 4-bit routed experts and q8_0 the rest,
 * or "q8_0", "f16", "f32", "q4_k", "source"), onProgress(p), expertBudgetMB,
 * cache ("cache-storage" | "opfs" | "none": where shards persist across
 * visits, keyed by content hash; "opfs" is the Origin Private File System),
 * storageBudgetMB (the most the cache keeps; default 0: 80% of the quota
 * from navigator.storage.estimate(); cold expert shards are evicted to make
 * room, and what cannot fit is fetched again next visit, never an error),
 * backend ("cpu" | "webgpu" | "auto"),
 * eager (download every shard, experts included, before loading: the
 * whole-pack baseline for benchmarks), simd (false: the CPU path keeps its
 * pure-Go kernels even where WebAssembly SIMD128 works; for comparisons),
 * threads (the cores the CPU path runs on: that many Web Workers, each a
 * mode.wasm holding a share of every routed expert; default 0: 2 when the
 * page is cross-origin isolated (COOP/COEP) and has two cores, else 1;
 * without cross-origin isolation always 1),
 * workerURL, wasmURL, wasmExecURL.
 *
 * engine.info.workers says how many workers the model runs on and
 * engine.info.workersNote why.
 *
 * engine.info.kernels says which kernels the CPU path runs ("simd128" or
 * "go") and engine.info.kernelsNote why.
 *
 * engine.info.backend says what runs the model ("webgpu" or "cpu") and
 * engine.info.backendNote why: "auto" takes WebGPU only on a hardware
 * adapter, since on a software renderer (SwiftShader, lavapipe) the CPU
 * path is faster; "webgpu" forces it. backend
 * "webgpu" without WebGPU rejects with code "unavailable".
 * engine.info.chatTemplate names the chat format; when the pack's own
 * template could not be parsed, engine.info.chatTemplateNote says so.
 */
export async function create(options = {}) {
  if (!options.model) throw new ModeError({ code: "bad_request", message: "create: model (a manifest URL or hf:ORG/REPO) is required" });
  const base = import.meta.url;
  const workerURL = new URL(options.workerURL ?? "worker.js", base);
  workerURL.searchParams.set("wasm", new URL(options.wasmURL ?? "mode.wasm", base).href);
  workerURL.searchParams.set("exec", new URL(options.wasmExecURL ?? "wasm_exec.js", base).href);
  if (options.simd === false) workerURL.searchParams.set("simd", "0");
  const { worker, done } = startWorker(workerURL);
  const engine = new Engine(worker, workerURL.origin + workerURL.pathname);
  try {
    engine.info = await engine._call("load", {
      // hf:ORG/REPO[@REVISION] names a Hugging Face repository, read from
      // hfEndpoint (default the public hub); anything else is a manifest URL.
      model: String(options.model).startsWith("hf:") ? String(options.model) : new URL(options.model, location.href).href,
      hfEndpoint: options.hfEndpoint ? new URL(options.hfEndpoint, location.href).href.replace(/\/$/, "") : "",
      quant: options.quant ?? "",
      expertBudgetMB: options.expertBudgetMB ?? 0,
      cache: options.cache ?? "cache-storage",
      storageBudgetMB: options.storageBudgetMB ?? 0,
      backend: options.backend ?? "auto",
      // threads is the cores the CPU path runs on: engine instances in
      // Web Workers, routed experts split between them (worker.js).
      workers: options.threads ?? 0,
      prefetch: options.prefetch ?? true,
      missingExperts: options.missingExperts ?? "exact",
      eager: options.eager ?? false,
    }, { onProgress: options.onProgress });
  } catch (err) {
    worker.terminate();
    throw err;
  } finally {
    done();
  }
  return engine;
}

// startWorker runs the module worker at url. A worker's script must have
// the page's origin, so for an engine hosted elsewhere (mode.js imported
// from another site) the worker starts from a same-origin blob: URL whose
// only line imports worker.js: module workers may import cross-origin
// scripts that are served with CORS. worker.js reads its parameters from
// import.meta.url, so they and its relative URLs still refer to the
// engine's origin, not to the blob.
function startWorker(url) {
  if (url.origin === location.origin) return { worker: new Worker(url, { type: "module" }), done() {} };
  const code = `import ${JSON.stringify(url.href)};\n`;
  const blobURL = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
  // Revoked once the engine loaded or failed: by then the worker has long
  // read its script, while revoking at once would race the worker's fetch
  // in browsers that read the blob lazily.
  return { worker: new Worker(blobURL, { type: "module" }), done: () => URL.revokeObjectURL(blobURL) };
}

class Engine {
  #worker;
  #next = 1;
  #pending = new Map(); // id → {resolve, reject, onProgress, onChunk}

  constructor(worker, workerURL) {
    this.#worker = worker;
    worker.onmessage = (e) => this.#receive(e.data);
    // A worker that fails to load reports a bare Event with no message: the
    // usual cause is that its script (or the server) cannot be reached.
    worker.onerror = (e) => this.#failAll({
      code: "worker_failed",
      message: e.message
        ? `worker error: ${e.message}`
        : `could not start the worker from ${workerURL}: the server may be unreachable (or, for a page of another origin, not send CORS headers); check the connection and try again`,
    });
    this.chat = { completions: { create: (p) => this.#generate("chat", p) } };
    this.completions = { create: (p) => this.#generate("complete", p) };
  }

  /** interrupt stops the running generation; it ends with finish_reason "abort". */
  interrupt() { return this._call("interrupt"); }

  /** stats returns bytes fetched, expert residency, cache hit rates and speeds. */
  stats() { return this._call("stats"); }

  /** unload frees the model and stops the worker. */
  async unload() {
    try { await this._call("unload"); } finally {
      this.#worker.terminate();
      this.#failAll({ code: "not_loaded", message: "the engine was unloaded" });
    }
  }

  _call(op, params, { onProgress, onChunk } = {}) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress, onChunk });
      this.#worker.postMessage({ id, op, params });
    });
  }

  #receive(m) {
    if (m.type === "fatal") return this.#failAll(m.error);
    const p = this.#pending.get(m.id);
    if (!p) return;
    switch (m.type) {
      case "progress": p.onProgress?.(m.data); break;
      case "chunk": p.onChunk?.(m.data); break;
      case "result": this.#pending.delete(m.id); p.resolve(m.data); break;
      case "error": this.#pending.delete(m.id); p.reject(new ModeError(m.error)); break;
    }
  }

  #failAll(error) {
    for (const p of this.#pending.values()) p.reject(new ModeError(error));
    this.#pending.clear();
  }

  async #generate(op, params = {}) {
    if (!params.stream) return this._call(op, params);
    // Chunks arrive as messages; the iterator hands them out in order and
    // ends with the result (or throws its error).
    const chunks = [];
    let wake = null, done = false, failure = null;
    const poke = () => { wake?.(); wake = null; };
    this._call(op, params, { onChunk: (c) => { chunks.push(c); poke(); } })
      .then(() => { done = true; poke(); }, (err) => { failure = err; done = true; poke(); });
    const engine = this;
    return {
      async *[Symbol.asyncIterator]() {
        try {
          for (;;) {
            if (chunks.length) { yield chunks.shift(); continue; }
            if (failure) throw failure;
            if (done) return;
            await new Promise((r) => { wake = r; });
          }
        } finally {
          // A consumer that stops early (break) stops the generation.
          if (!done) engine.interrupt().catch(() => {});
        }
      },
    };
  }
}
