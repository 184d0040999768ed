package main

import "encoding/json"

// The page and the worker exchange JSON-shaped messages. Every request
// carries an id chosen by the page; every message the worker sends back
// about that request carries the same id.
//
//	page → worker: {"id": 1, "op": "load", "params": {...}}
//	worker → page: {"id": 1, "type": "progress", "data": {...}}  (load only, any number)
//	               {"id": 1, "type": "chunk", "data": {...}}     (streamed generation, any number)
//	               {"id": 1, "type": "result", "data": {...}}    (exactly one of result
//	               {"id": 1, "type": "error", "error": {...}}     or error, last)
//
// Ops: load, chat, complete, interrupt, stats, unload.

// request is one message from the page.
type request struct {
	ID     int64           `json:"id"`
	Op     string          `json:"op"`
	Params json.RawMessage `json:"params,omitempty"`
}

// reply is one message to the page.
type reply struct {
	ID    int64     `json:"id"`
	Type  string    `json:"type"` // progress, chunk, result, error
	Data  any       `json:"data,omitempty"`
	Error *errorMsg `json:"error,omitempty"`
}

// errorMsg is an error the page can show to a person: Message says what
// went wrong and, where there is one, what to do about it.
type errorMsg struct {
	Code    string `json:"code"` // bad_request, not_loaded, busy, unavailable, load_failed, generate_failed, worker_failed
	Message string `json:"message"`
}

// codedError carries an error code for the page with the error.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func withCode(code string, err error) error { return &codedError{code, err} }

// loadParams are the options of mode.create.
type loadParams struct {
	Model string `json:"model"` // manifest URL, absolute (the page resolves it), or hf:ORG/REPO[@REVISION]
	// HFEndpoint is the hub an hf: model is read from ("" is the public
	// one), absolute.
	HFEndpoint string `json:"hfEndpoint"`
	// Quant is the format an hf: model's weights are converted to as they
	// load (hfrepo.ParseQuant; "" is 4-bit routed experts, q8_0 the rest).
	Quant          string  `json:"quant"`
	ExpertBudgetMB float64 `json:"expertBudgetMB"`
	Cache          string  `json:"cache"` // "cache-storage" (default), "opfs" or "none"
	// StorageBudgetMB caps the bytes the cache keeps; 0 means 80% of the
	// origin's quota (navigator.storage.estimate). Cold expert shards are
	// evicted to make room; what still does not fit is not kept.
	StorageBudgetMB float64 `json:"storageBudgetMB"`
	Backend         string  `json:"backend"` // "cpu", "webgpu" or "auto" (default)
	Threads         int     `json:"threads"`
	// Workers is how many engine instances (Web Workers, so cores) the
	// CPU path runs on, routed experts split between them (cpu.Peer);
	// 0 lets the platform choose (the browser: 2 when the page is
	// cross-origin isolated and has two cores, else 1).
	Workers int `json:"workers"`
	// Prefetch predicts each next layer's experts (pre-gating) and fetches
	// them while the current layer computes; nil means on.
	Prefetch *bool `json:"prefetch"`
	// MissingExperts is "exact" (default: wait for a routed expert that is
	// not loaded) or "fast" (use the best ready expert meanwhile).
	MissingExperts string `json:"missingExperts"`
	// Eager downloads every shard, routed experts included, before the
	// model loads: the whole-pack baseline that lazy expert loading is
	// measured against (make bench-web). The bytes stay in memory.
	Eager bool `json:"eager"`
}

// loadResult describes the loaded model.
type loadResult struct {
	Model       string `json:"model"`
	Backend     string `json:"backend"`               // what runs the model: "cpu" or "webgpu"
	BackendNote string `json:"backendNote,omitempty"` // why "auto" did not get WebGPU
	Cache       string `json:"cache"`                 // what persistence is in use: "cache-storage", "opfs" or "none"
	CacheNote   string `json:"cacheNote,omitempty"`
	// Kernels names the CPU path's kernels: "simd128" (internal/wasmsimd)
	// or runtime/vec's ("go" in a wasm build); KernelsNote says why.
	Kernels     string `json:"kernels"`
	KernelsNote string `json:"kernelsNote,omitempty"`
	// Workers is how many engine instances the model runs on (cpu.Peer:
	// routed experts split between them); WorkersNote says why that many.
	Workers      int    `json:"workers"`
	WorkersNote  string `json:"workersNote,omitempty"`
	ChatTemplate string `json:"chatTemplate"` // the template family used for chat
	// ChatTemplateNote says why the pack's own template is not used.
	ChatTemplateNote string `json:"chatTemplateNote,omitempty"`
	Vocab            int    `json:"vocab"`
	ContextLen       int    `json:"contextLength"`
	Experts          int    `json:"experts"`
	// ExpertBytes is the size of all routed experts' shards: what the
	// whole pack would cost beyond the up-front weights.
	ExpertBytes int64 `json:"expertBytes"`
	Stats       stats `json:"stats"`
}

// progress is sent while a model loads. Before the first shard arrives
// ETASeconds is -1 (unknown).
type progress struct {
	Phase       string  `json:"phase"` // "manifest", "download" (eager only), "weights", "ready"
	Bytes       int64   `json:"bytes"` // of the weights loaded up front, from network or cache
	Total       int64   `json:"total"`
	Shards      int     `json:"shards"`
	ShardsTotal int     `json:"shardsTotal"`
	FromCache   int     `json:"fromCache"` // shards read from Cache Storage
	ETASeconds  float64 `json:"etaSeconds"`
}

// gpuStats is what the WebGPU backend submitted (backend.Counts): totals
// since load, and per decoded token of the last generation (the tokens
// after the first, which comes from the prompt's step), which say whether
// a model decodes through the fused kernels (layer.wgsl, a layer per
// dispatch; matvec.wgsl's head_argmax, no argmax.wgsl; router.wgsl) and
// what a token costs in dispatches.
type gpuStats struct {
	Submissions int            `json:"submissions"`
	Dispatches  int            `json:"dispatches"`
	Kernels     map[string]int `json:"kernels"` // dispatches by WGSL file
	// DecodeTokens is the decode steps the per-token figures average
	// over (0: the last generation had none).
	DecodeTokens        int                `json:"decodeTokens"`
	SubmissionsPerToken float64            `json:"submissionsPerToken"`
	DispatchesPerToken  float64            `json:"dispatchesPerToken"`
	KernelsPerToken     map[string]float64 `json:"kernelsPerToken"`
}

// expertMap is the per-expert state behind the chat page's expert map:
// expert indices per layer.
type expertMap struct {
	Layers     int       `json:"layers"`
	Experts    int       `json:"experts"`    // per layer (the widest layer)
	Fetched    [][]int   `json:"fetched"`    // fetched (network or Cache Storage) since load
	Cached     [][]int   `json:"cached"`     // every shard of it in the persistent store (Cache Storage or OPFS)
	Resident   [][]int   `json:"resident"`   // in the engine's expert cache
	LastRouted [][]int   `json:"lastRouted"` // routed for the most recent token
	HitRate    []float64 `json:"layerHitRate"`
}

// stats is what engine.stats() returns.
type stats struct {
	ExpertMap *expertMap `json:"expertMap,omitempty"`
	// GPU is the WebGPU backend's device work; absent on the CPU.
	GPU     *gpuStats `json:"gpu,omitempty"`
	Loaded  bool      `json:"loaded"`
	Backend string    `json:"backend"` // "cpu" or "webgpu"
	Workers int       `json:"workers"` // engine instances the model runs on
	// ExpertsSplit counts the routed experts split between the workers
	// since load (cpu.Backend.SplitExperts).
	ExpertsSplit int `json:"expertsSplit"`
	// Network and Cache Storage traffic of the shard source.
	BytesFetched   int64   `json:"bytesFetched"`   // over the network
	BytesFromCache int64   `json:"bytesFromCache"` // read back from Cache Storage
	ShardCacheHits int     `json:"shardCacheHits"`
	ShardCacheMiss int     `json:"shardCacheMisses"`
	ShardHitRate   float64 `json:"shardCacheHitRate"`
	// The persistent store (cache "cache-storage" or "opfs") within its budget.
	StorageEvictions int   `json:"storageEvictions"` // expert shards dropped to make room
	StorageSkipped   int   `json:"storageSkipped"`   // shards not kept: they did not fit
	StorageBytes     int64 `json:"storageBytes"`     // held by the store's indexed entries
	// The engine's routed-expert cache.
	ExpertsResident     int     `json:"expertsResident"`
	ExpertsTotal        int     `json:"expertsTotal"`
	ExpertBytesResident int64   `json:"expertBytesResident"`
	ExpertHitRate       float64 `json:"expertCacheHitRate"`
	ExpertEvictions     int     `json:"expertEvictions"`
	ExpertFetches       int     `json:"expertFetches"`
	Prefetched          int     `json:"prefetched"`     // experts fetched ahead of use
	PrefetchHits        int     `json:"prefetchHits"`   // of those, used when routed to
	PrefetchWasted      int64   `json:"prefetchWasted"` // bytes of prefetches dropped unused
	Substitutions       int     `json:"substitutions"`  // routed slots given to a ready expert ("fast")
	// An hf: model's tensors converted to the session's format, and its
	// shards taken converted from the store (neither fetched nor converted).
	Conversions          int     `json:"conversions"`
	ConvertedFromCache   int     `json:"convertedFromCache"`
	PrefillTokensPerSec  float64 `json:"prefillTokensPerSecond"`
	DecodeTokensPerSec   float64 `json:"decodeTokensPerSecond"`
	LastPromptTokens     int     `json:"lastPromptTokens"`
	LastCompletionTokens int     `json:"lastCompletionTokens"`
	// Of the last prompt's tokens, those whose KV cache entries were
	// reused from the request before, and those computed.
	LastCachedTokens    int `json:"lastCachedTokens"`
	LastPrefilledTokens int `json:"lastPrefilledTokens"`
}
