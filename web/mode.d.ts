// Type declarations for mode.js, the page-side API of the mode browser
// runtime (docs/js-api.md). Field names are those of the JSON the runtime
// sends, which follows OpenAI's where OpenAI has one.

/** The kinds of failure a ModeError reports (docs/js-api.md, "Errors"). */
export type ErrorCode =
  | "bad_request"
  | "unavailable"
  | "load_failed"
  | "busy"
  | "not_loaded"
  | "generate_failed"
  | "worker_failed"
  | "internal";

/** ModeError is an error reported by the runtime; code says which kind. */
export class ModeError extends Error {
  constructor(init?: { code?: ErrorCode; message?: string });
  name: "ModeError";
  code: ErrorCode;
}

/** Progress of a model's load, passed to CreateOptions.onProgress. */
export interface Progress {
  phase: "manifest" | "download" | "weights" | "ready";
  /** Bytes of the weights loaded up front so far, from network or cache. */
  bytes: number;
  total: number;
  shards: number;
  shardsTotal: number;
  /** Shards read from the persistent cache. */
  fromCache: number;
  /** Seconds left; -1 until the first shard arrived. */
  etaSeconds: number;
}

export interface CreateOptions {
  /**
   * URL of a pack's manifest.json, resolved against the page, or
   * "hf:ORG/REPO[@REVISION]": a Hugging Face repository of safetensors
   * weights, indexed and converted on load, routed experts fetched by range.
   */
  model: string;
  /** The hub hf: models are read from; default "https://huggingface.co". */
  hfEndpoint?: string | URL;
  /** hf: only: the format weights are converted to; default "q4_0" (4-bit routed experts, q8_0 the rest). */
  quant?: "q4_0" | "q4_k" | "q8_0" | "f16" | "f32" | "source";
  onProgress?: (p: Progress) => void;
  /** Memory for routed experts in MB; 0 (default) is no limit. */
  expertBudgetMB?: number;
  /** Where shards persist across visits; default "cache-storage". */
  cache?: "cache-storage" | "opfs" | "none";
  /** The most the cache keeps in MB; 0 (default) is 80% of the quota. */
  storageBudgetMB?: number;
  /** Default "auto": WebGPU on a hardware adapter, else the CPU. */
  backend?: "auto" | "cpu" | "webgpu";
  /**
   * The cores the CPU path runs on: that many Web Workers, each running
   * mode.wasm with a share of every routed expert's hidden units. 0
   * (default): 2 when the page is cross-origin isolated (COOP/COEP headers)
   * and navigator.hardwareConcurrency ≥ 2, else 1. Without cross-origin
   * isolation (no SharedArrayBuffer) it is always 1, and info.workersNote
   * says so.
   */
  threads?: number;
  /** Fetch each next layer's predicted experts ahead; default true. */
  prefetch?: boolean;
  /** "exact" (default) waits for a routed expert; "fast" substitutes a ready one. */
  missingExperts?: "exact" | "fast";
  /** Download every shard before loading (benchmark baseline); default false. */
  eager?: boolean;
  /** false keeps the CPU path's pure-Go kernels even where WebAssembly SIMD128 works; default true. */
  simd?: boolean;
  /** Default "worker.js", resolved against mode.js's URL. */
  workerURL?: string | URL;
  /** Default "mode.wasm", resolved against mode.js's URL. */
  wasmURL?: string | URL;
  /** Default "wasm_exec.js", resolved against mode.js's URL. */
  wasmExecURL?: string | URL;
}

/** Starts a worker and loads a pack. */
export function create(options: CreateOptions): Promise<Engine>;

export interface Message {
  role: "system" | "user" | "assistant" | (string & {});
  content: string;
}

interface RequestOptions {
  /** Default 1; 0 is greedy. */
  temperature?: number;
  top_p?: number;
  /** 0 (default): as many as the context holds. */
  max_tokens?: number;
  /** Sampling seed (a uint64 in the runtime: above 2^53 a number loses digits). */
  seed?: number;
  stop?: string | string[];
  /** Add prompt_token_ids and choices[0].token_ids to the result. */
  return_token_ids?: boolean;
}

export interface ChatRequest extends RequestOptions {
  messages: Message[];
  stream?: boolean;
}

export interface CompletionRequest extends RequestOptions {
  prompt: string;
  stream?: boolean;
}

export type FinishReason = "stop" | "length" | "abort";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
  /** Prompt tokens computed, not reused from the KV cache. */
  prefilled_tokens: number;
}

interface ResultBase {
  id: string;
  created: number;
  model: string;
  usage: Usage;
  prompt_token_ids?: number[];
  /** Oldest messages left out so the conversation fits the context. */
  dropped_messages?: number;
  /** What was changed to serve the request, for a person. */
  note?: string;
  /** The sampling seed used; absent for greedy decoding. */
  seed?: number;
}

export interface ChatCompletion extends ResultBase {
  object: "chat.completion";
  choices: {
    index: number;
    message: { role: "assistant"; content: string };
    finish_reason: FinishReason;
    token_ids?: number[];
    logprobs: null;
  }[];
}

export interface Completion extends ResultBase {
  object: "text_completion";
  choices: {
    index: number;
    text: string;
    finish_reason: FinishReason;
    token_ids?: number[];
    logprobs: null;
  }[];
}

/** The last chunk of a stream carries finish_reason, usage and the notes. */
interface ChunkBase {
  id: string;
  created: number;
  model: string;
  usage?: Usage;
  dropped_messages?: number;
  note?: string;
  seed?: number;
}

export interface ChatCompletionChunk extends ChunkBase {
  object: "chat.completion.chunk";
  choices: {
    index: number;
    /** role is in the first chunk only; content is absent when empty. */
    delta: { role?: "assistant"; content?: string };
    finish_reason: FinishReason | null;
    logprobs: null;
  }[];
}

export interface CompletionChunk extends ChunkBase {
  object: "text_completion";
  choices: {
    index: number;
    text: string;
    finish_reason: FinishReason | null;
    logprobs: null;
  }[];
}

/**
 * What the WebGPU backend submitted: totals since load, and per decoded
 * token of the last generation (the tokens after the first).
 */
export interface GPUStats {
  submissions: number;
  dispatches: number;
  /** Dispatches by kernel, named by WGSL file ("layer.wgsl"). */
  kernels: Record<string, number>;
  /** The decode steps the per-token figures average over (0: none). */
  decodeTokens: number;
  submissionsPerToken: number;
  dispatchesPerToken: number;
  kernelsPerToken: Record<string, number>;
}

/** Per-expert state per layer (expert indices), behind the chat page's expert map. */
export interface ExpertMap {
  layers: number;
  experts: number;
  fetched: number[][];
  /** Experts whose shards the persistent store (Cache Storage or OPFS) holds. */
  cached: number[][];
  resident: number[][];
  lastRouted: number[][];
  layerHitRate: number[];
}

export interface Stats {
  loaded: boolean;
  backend: "" | "cpu" | "webgpu";
  /** Web Workers (cores) the model runs on; 0 before a model is loaded. */
  workers: number;
  /** Routed experts split between the workers since load. */
  expertsSplit: number;
  bytesFetched: number;
  bytesFromCache: number;
  shardCacheHits: number;
  shardCacheMisses: number;
  shardCacheHitRate: number;
  storageEvictions: number;
  storageSkipped: number;
  storageBytes: number;
  expertsResident: number;
  expertsTotal: number;
  expertBytesResident: number;
  expertCacheHitRate: number;
  expertEvictions: number;
  expertFetches: number;
  prefetched: number;
  prefetchHits: number;
  prefetchWasted: number;
  substitutions: number;
  conversions: number;
  convertedFromCache: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  lastPromptTokens: number;
  lastCompletionTokens: number;
  lastCachedTokens: number;
  lastPrefilledTokens: number;
  expertMap?: ExpertMap;
  /** The WebGPU backend's device work; absent on the CPU. */
  gpu?: GPUStats;
}

/** What create loaded (engine.info). */
export interface EngineInfo {
  model: string;
  /** What runs the model. */
  backend: "cpu" | "webgpu";
  /** Why the backend is what it is (for example why "auto" took the CPU). */
  backendNote?: string;
  cache: "cache-storage" | "opfs" | "none";
  /** Why the cache asked for is not in use. */
  cacheNote?: string;
  /** The CPU path's kernels: "simd128" (WebAssembly SIMD128) or "go" (pure Go). */
  kernels: string;
  /** Why the kernels are what they are. */
  kernelsNote?: string;
  /** How many Web Workers (cores) the model runs on (the threads option). */
  workers: number;
  /** Why that many: what threads asked for, cross-origin isolation, cores. */
  workersNote?: string;
  chatTemplate: string;
  /** Why the pack's own chat template is not used (it could not be parsed, say). */
  chatTemplateNote?: string;
  vocab: number;
  contextLength: number;
  experts: number;
  /** Bytes of all routed experts' shards. */
  expertBytes: number;
  stats: Stats;
}

export interface Engine {
  info: EngineInfo;
  chat: {
    completions: {
      create(request: ChatRequest & { stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(request: ChatRequest & { stream?: false }): Promise<ChatCompletion>;
      create(request: ChatRequest): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
    };
  };
  completions: {
    create(request: CompletionRequest & { stream: true }): Promise<AsyncIterable<CompletionChunk>>;
    create(request: CompletionRequest & { stream?: false }): Promise<Completion>;
    create(request: CompletionRequest): Promise<Completion | AsyncIterable<CompletionChunk>>;
  };
  /** Stops the running generation; it ends with finish_reason "abort". */
  interrupt(): Promise<{ interrupted: boolean }>;
  stats(): Promise<Stats>;
  /** Frees the model and stops the worker. */
  unload(): Promise<void>;
}
