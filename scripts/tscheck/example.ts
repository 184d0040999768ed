// The API as docs/js-api.md shows it, compiled against ../../web/mode.d.ts
// with strict checks (tsc --noEmit -p .). Every value's type is spelled
// out where it is used, so a declaration that drifts from the docs fails.
import * as mode from "../../web/mode.js";
import type { ChatCompletionChunk, Completion, ErrorCode, Progress, Stats } from "../../web/mode.js";

export async function demo(): Promise<void> {
  const engine: mode.Engine = await mode.create({
    model: "https://engine.example/packs/stories260K/manifest.json",
    onProgress: (p: Progress) => console.log(p.phase, p.bytes, "/", p.total),
  });
  console.log(engine.info.backend, engine.info.contextLength);

  const r: Completion = await engine.completions.create({ prompt: "Once upon a time", max_tokens: 40, temperature: 0 });
  console.log(r.choices[0].text, r.usage.completion_tokens);

  const messages = [{ role: "user", content: "Tell me a story." }];
  for await (const c of await engine.chat.completions.create({ messages, stream: true })) {
    document.body.append(c.choices[0].delta.content ?? "");
  }
  console.log((await engine.stats()).decodeTokensPerSecond);
  await engine.unload();
}

// Every option of create, a chat without streaming, a streamed
// completion, stats, interrupt and the error codes.
export async function everything(): Promise<string> {
  let engine: mode.Engine;
  try {
    engine = await mode.create({
      model: "/packs/olmoe/manifest.json",
      onProgress: (p) => void p.etaSeconds,
      expertBudgetMB: 64,
      cache: "opfs",
      storageBudgetMB: 512,
      backend: "webgpu",
      threads: 2,
      prefetch: false,
      missingExperts: "fast",
      eager: false,
      workerURL: new URL("https://engine.example/worker.js"),
      wasmURL: "https://engine.example/mode.wasm",
      wasmExecURL: "https://engine.example/wasm_exec.js",
    });
  } catch (err) {
    if (err instanceof mode.ModeError) {
      const code: ErrorCode = err.code;
      if (code === "unavailable") return err.message;
    }
    throw err;
  }
  const info = engine.info;
  const notes: (string | undefined)[] = [info.backendNote, info.cacheNote, info.chatTemplate];

  const chat = await engine.chat.completions.create({
    messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }],
    temperature: 0.8, top_p: 0.9, seed: 7, stop: ["\n\n", "."], max_tokens: 30, return_token_ids: true,
  });
  const reply: string = chat.choices[0].message.content;
  const ids: number[] | undefined = chat.choices[0].token_ids;
  const seed: number | undefined = chat.seed;

  let last: ChatCompletionChunk | undefined;
  for await (const c of await engine.chat.completions.create({ messages: [{ role: "user", content: reply }], stream: true })) {
    last = c;
  }
  const finish: "stop" | "length" | "abort" | null = last?.choices[0].finish_reason ?? null;
  const usage = last?.usage;

  let text = "";
  for await (const c of await engine.completions.create({ prompt: "Once", stream: true, stop: "." })) {
    text += c.choices[0].text;
    if (text.length > 100) await engine.interrupt();
  }
  const s: Stats = await engine.stats();
  const hit: number = s.expertMap?.layerHitRate[0] ?? s.expertCacheHitRate;
  const { interrupted } = await engine.interrupt();
  await engine.unload();
  return [...notes, reply, ids?.length, seed, finish, usage?.prefilled_tokens, hit, interrupted].join(" ");
}
