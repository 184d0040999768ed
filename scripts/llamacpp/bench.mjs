// The llama.cpp side of `mode bench`: loads a GGUF through node-llama-cpp's
// prebuilt CPU binaries and times, per run, a prefill of the prompt (one
// evaluation of all its tokens) and a decode of --decode tokens, one token
// per evaluation (as llama-bench's tg does), greedy. It prints one JSON
// object on stdout; llama.cpp's logs go to stderr.
//
//   node bench.mjs --model M.gguf --threads 2 --prompt 1,2,3 --decode 64 [--runs 1]
//
// The script's own per-token cost is reported beside the speeds: each
// run's wall-clock times are compared with llama.cpp's perf counters
// (llama_perf_context_print, through performanceTracking), so that the
// JSON says how much of a decode step was node and the binding, not
// llama.cpp.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    threads: { type: "string", default: "2" },
    prompt: { type: "string" }, // comma-separated token ids
    decode: { type: "string", default: "64" },
    runs: { type: "string", default: "1" },
  },
});
if (!args.model || !args.prompt) {
  console.error("usage: node bench.mjs --model M.gguf --prompt ID,ID,... [--decode N] [--threads T] [--runs R]");
  process.exit(2);
}
const threads = Number(args.threads);
const decode = Number(args.decode);
const runs = Number(args.runs);
const prompt = args.prompt.split(",").map(Number);
if (prompt.length < 1 || prompt.some((t) => !Number.isInteger(t) || t < 0) || !(decode >= 1) || !(runs >= 1) || !(threads >= 1)) {
  console.error("bench.mjs: --prompt wants token ids, --decode, --runs and --threads positive integers");
  process.exit(2);
}

// llama.cpp's perf lines, captured from its log, e.g.
// "llama_perf_context_print: prompt eval time =  12.34 ms /  32 tokens (...)"
// "llama_perf_context_print:        eval time = 567.89 ms /  63 runs   (...)"
let perf = {};
const logger = (level, message) => {
  const m = /(prompt eval|\beval) time\s*=\s*([\d.]+) ms\s*\/\s*(\d+)/.exec(message);
  if (m) perf[m[1] === "prompt eval" ? "prompt" : "eval"] = { ms: Number(m[2]), n: Number(m[3]) };
  else if (level === LlamaLogLevel.error || level === LlamaLogLevel.warn) process.stderr.write(message + "\n");
};

const llama = await getLlama({ gpu: false, build: "never", maxThreads: threads, logLevel: LlamaLogLevel.info, logger });
const t0 = performance.now();
const model = await llama.loadModel({ modelPath: args.model, gpuLayers: 0 });
const loadMs = performance.now() - t0;
const context = await model.createContext({
  contextSize: prompt.length + decode + 1,
  batchSize: Math.max(prompt.length, 1),
  threads,
  sequences: 1,
  performanceTracking: true,
});
const sequence = context.getSequence();
const greedy = { token: true, options: { temperature: 0 } };

// once runs a prefill of tokens and decode-1 single-token evaluations.
async function once(tokens, decodeN) {
  await sequence.clearHistory();
  await context.printTimings(); // resets llama.cpp's counters
  perf = {};
  const items = tokens.map((t, i) => (i === tokens.length - 1 ? [t, { generateNext: greedy }] : t));
  const p0 = performance.now();
  const out = await sequence.controlledEvaluate(items);
  const prefillMs = performance.now() - p0;
  let next = out[tokens.length - 1].next.token;
  const generated = [next];
  const d0 = performance.now();
  for (let i = 1; i < decodeN; i++) {
    const o = await sequence.controlledEvaluate([[next, { generateNext: greedy }]]);
    next = o[0].next.token;
    generated.push(next);
  }
  const decodeMs = performance.now() - d0;
  await context.printTimings();
  return {
    prefill_ms: prefillMs,
    decode_ms: decodeMs,
    prefill_tokens: tokens.length,
    decode_evals: decodeN - 1, // the first token comes from the prefill
    llama_prompt_ms: perf.prompt?.ms ?? null,
    llama_eval_ms: perf.eval?.ms ?? null,
    llama_eval_n: perf.eval?.n ?? null,
    tokens: generated,
  };
}

// A warm-up of the whole prompt and one decode step, as llama-bench and
// `mode bench --json` do.
await once(prompt, 2);
const results = [];
for (let r = 0; r < runs; r++) results.push(await once(prompt, decode));
const ru = process.resourceUsage();
console.log(JSON.stringify({
  peer: "llama.cpp",
  binding: "node-llama-cpp",
  llama_cpp_release: llama.llamaCppRelease?.release ?? null,
  threads: context.currentThreads ?? threads,
  load_ms: loadMs,
  runs: results,
  max_rss_bytes: ru.maxRSS * 1024, // maxRSS is in KiB
}));
await context.dispose();
await model.dispose();
await llama.dispose();
