# mode: see README.md. `make demo` and `make test` work on a fresh Debian
# machine: they install what they need (scripts/ensure-*.sh; ensure-node.sh
# also installs the npm packages the tokenizer and chat reference tests
# share, which tests run in parallel would otherwise install together).

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
GO ?= go
BIN := bin
SHARED ?= $(abspath ../shared)
# Where `make demo` keeps models it downloaded when ../shared is absent.
MODE_CACHE ?= $(HOME)/.cache/mode
TEST_TIMEOUT ?= 25m
BENCH_TMP ?= /tmp/mode-bench

.PHONY: all build wasm wasi ui precompress bench-web bench-workers test vet demo bench bench-cpu bench-import-large test-llamacpp fuzz soak clean tools ensure-vulkan

all: build

tools:
	@scripts/ensure-go.sh

# A Vulkan driver (Mesa lavapipe on CPU-only machines) for the webgpu tests.
ensure-vulkan:
	@scripts/ensure-vulkan.sh

# mode is pure Go (static, no libc); mode-webgpu is the same command with
# cgo and wgpu-native for --backend webgpu, which mode runs in its place
# (cmd/mode/backend_forward.go): linked into mode, WebGPU cost every CPU
# run ~6 MiB of resident executable (RATIONALE.md, "Peak RSS of the
# smallest pack").
build: tools wasi wasm ui precompress
	CGO_ENABLED=0 $(GO) build -o $(BIN)/mode ./cmd/mode
	$(GO) build -tags webgpu -o $(BIN)/mode-webgpu ./cmd/mode
	$(GO) build -o $(BIN)/modelpack ./cmd/modelpack
	$(GO) build -o $(BIN)/devserver ./cmd/devserver

vet: tools
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path '*/node_modules/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# The browser builds are stripped (-s -w: no symbol table or DWARF; panics
# still name functions) and built without local paths (-trimpath).
WASM_FLAGS := -trimpath -ldflags='-s -w'

# The browser runtime: mode.wasm runs in a Web Worker (see web/).
wasm: tools
	GOOS=js GOARCH=wasm $(GO) build $(WASM_FLAGS) -o $(BIN)/mode.wasm ./cmd/wasm

# .br and .gz beside each browser wasm, which the devserver hands to
# clients that accept them (Chromium sends br only over HTTPS, so
# http://127.0.0.1 gets the .gz). Brotli's best level costs most of a
# minute of CPU per wasm, so `make test` does not ask for it and files
# whose siblings are up to date are skipped.
precompress: wasm ui
	$(GO) run ./internal/cmd/precompress $(BIN)/mode.wasm web/ui/ui.wasm

# e2e/ drives headless Chromium, which ensure-chromium.sh installs; the
# tokenizer and chat reference tests and the TypeScript check need node.
# The runtime's tests run twice: with the amd64 assembly kernels and with
# -tags purego, the pure-Go kernels the wasm builds run. e2e runs with
# purego too, so that its native engine computes the browser's bits.
# Then the race detector over the packages that run goroutines (the CPU
# worker pool, shard downloads, the loader's prefetch, the worker's
# session), and a short run of every fuzz target.
# The smoke run counts executions rather than seconds: a duration -fuzztime
# races Go's fuzz coordinator against its own deadline (go.dev/issue/75804,
# unfixed in go1.26) and fails with a bare "context deadline exceeded" on a
# loaded machine; a count has no deadline to race.
FUZZ_SMOKE ?= 50000x
test: tools vet ensure-vulkan wasm
	@scripts/ensure-chromium.sh
	@scripts/ensure-node.sh
	$(GO) test -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v '/e2e$$')
	$(GO) test -tags purego -timeout $(TEST_TIMEOUT) ./runtime/... ./e2e
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./runtime/... ./cmd/wasm
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZ_SMOKE)

# Distils the default dense model (stories260K from ../shared, or a copy
# downloaded into $(MODE_CACHE)) into a Mixture of Distilled Experts pack —
# 8 experts of natural widths, top-4, a 32-neuron shared expert —, generates
# from it on the command line, then serves the chat page on 127.0.0.1 with
# that pack (until Ctrl-C; DEMO_SECONDS when not on a terminal), on
# DEMO_ADDR or, when that port is taken, a free one; it prints the URL.
# DEMO_TRAIN is a short KL fine-tuning (75 s on 2 cores) that
# takes held-out greedy agreement to 83% (64.6% without it, measured
# before the sampler fix; docs/distill-stories260K.md); DEMO_TRAIN= skips it.
DEMO_TRAIN ?= --refit 1 --sequential --train-steps 300 --lr 3e-3 --cosine --lm-weight 0 \
  --argmax-weight 0.3 --router-lr 0.01 --train-all --fresh 2400
DEMO_ADDR ?= 127.0.0.1:8080
DEMO_SECONDS ?= 20
demo: build
	@model=$$(scripts/default-model.sh "$(SHARED)" "$(MODE_CACHE)") && \
	  echo "modelpack distill $$model -o $(BIN)/packs/stories260K-mode --experts 8 --top-k 4 --shared 32 --self-generate 200 --seed 1 $(DEMO_TRAIN)" && \
	  $(BIN)/modelpack distill "$$model" -o $(BIN)/packs/stories260K-mode --experts 8 --top-k 4 --shared 32 \
	    --self-generate 200 --seq-len 128 --seed 1 $(DEMO_TRAIN) --force && \
	  echo && echo "mode run -m $(BIN)/packs/stories260K-mode -p 'Once upon a time' -n 200" && \
	  $(BIN)/mode run -m $(BIN)/packs/stories260K-mode -p "Once upon a time" -n 200
	@echo
	@addr=$(DEMO_ADDR); \
	  if (exec 3<>/dev/tcp/$${addr%:*}/$${addr##*:}) 2>/dev/null; then \
	    echo "$$addr is taken: serving on a free port instead"; addr=$${addr%:*}:0; \
	  fi; \
	  serve="$(BIN)/devserver --addr $$addr --web web --wasm $(BIN)/mode.wasm --models $(BIN)/packs"; \
	  if [ -t 1 ]; then echo "serving until Ctrl-C"; \
	  else echo "not a terminal: serving for $(DEMO_SECONDS) s"; serve="timeout $(DEMO_SECONDS) $$serve"; fi; \
	  $$serve | while IFS= read -r line; do \
	    echo "$$line"; \
	    case "$$line" in "listening on "*) u=$${line#listening on }; \
	      echo "Chat with the distilled model in a browser: $${u}ui/  (minimal page: $$u)";; esac; \
	  done; \
	  rc=$${PIPESTATUS[0]}; [ $$rc = 0 ] || [ $$rc = 124 ]

# The vugu chat page: generate the components, then build its wasm into
# web/ui/ (served at /ui/ by the devserver).
ui: tools
	$(GO) tool vugugen -skip-go-mod -skip-main ui
	gofmt -w ui/*_gen.go
	GOOS=js GOARCH=wasm $(GO) build $(WASM_FLAGS) -o web/ui/ui.wasm ./cmd/ui

# The wasip1 build of mode that `mode run --wasm` runs under wazero, so CI
# tests the exact wasm build without a browser.
wasi: tools
	GOOS=wasip1 GOARCH=wasm $(GO) build -o $(BIN)/mode.wasip1.wasm ./cmd/mode

# Speed, as ratios against baselines measured in the same run.
bench: build bench-cpu
	@model=$$(scripts/default-model.sh "$(SHARED)" "$(MODE_CACHE)") && \
	  $(BIN)/mode bench -m "$$model" --prompt-tokens 128 --decode-tokens 256
	$(BIN)/mode bench --synth mixtral --prompt-tokens 64 --decode-tokens 32
	$(GO) test -run '^$$' -bench 'MatVec' -benchtime 20x ./runtime/cpu
	$(GO) test -run '^$$' -bench . -benchtime 20x ./runtime/sample
	$(GO) test -run '^$$' -bench 'LazyFetch|Import|NoiseFloor' -benchtime 1x ./modelpack/pack
	$(GO) test -run '^$$' -bench 'MatVec|DecodeCost|Attention|Route|Prefill' -benchtime 10x ./webgpu
	$(GO) test -run '^$$' -bench . -benchtime 1x ./modelpack/distill
	$(MAKE) bench-import-large
	$(MAKE) soak

# The devserver under load on loopback for SOAK_SECONDS: 64 clients asking
# for random byte ranges (every answer checked) while 100 more connect and
# say nothing, send headers a byte a second, never read or read a byte at
# a time; it prints requests, errors, and the server's peak and final file
# descriptors and resident memory, and fails on an error or past bounds.
SOAK_SECONDS ?= 60
soak: tools
	MODE_SOAK=1 SOAK_SECONDS=$(SOAK_SECONDS) $(GO) test -count=1 -run '^TestSoak$$' -v -timeout 10m ./cmd/devserver

# mode against llama.cpp (node-llama-cpp's prebuilt binaries) on the same
# weights in the same run: synthetic Mixtral (d=512, 8 layers, 8 experts x
# 1408, top-2) in f32, q8_0, q4_0 and q4_k, and OLMoE (d=1024, 16 layers, 64
# experts x 512, top-8) in q8_0, q4_0 and q4_k — its f32 GGUF is 6.8 GB, too
# slow to write, import and load twice per run on 2 cores
# (BENCH_OLMOE_TYPES="f32 q8_0 q4_0" adds it). Prefill and decode tok/s,
# ratios, peak RSS, and decode as % of the measured memory-bandwidth limit.
bench-cpu: build
	BIN=$(BIN) scripts/bench-cpu.sh

# llama.cpp's greedy tokens equal mode's on GGUFs `modelpack synth --gguf`
# writes: the check that the export means what llama.cpp reads. Not in
# `make test`: it installs node-llama-cpp (scripts/ensure-llamacpp.sh).
test-llamacpp: tools
	scripts/ensure-llamacpp.sh
	MODE_TEST_LLAMACPP=1 $(GO) test -count=1 -run '^TestLlamaCppGreedy$$' -v ./cmd/mode

# Lazy routed-expert loading vs downloading the whole pack first, in headless
# Chromium (WebGPU on SwiftShader when there is an adapter, else the CPU),
# over a throttled link (100 Mbit/s, 20 ms); then the CPU path with its
# SIMD128 kernels against the pure-Go ones and against wllama (llama.cpp
# in wasm, scripts/wllama's pinned @wllama/wllama) on the same GGUFs, 1
# and 2 threads (TestBenchWebCPU), Mixtral- and OLMoE-shaped, q4_0 and
# q8_0. MODE_BENCH_WEB_SHAPES=mixtral (or olmoe) measures one shape,
# MODE_BENCH_WEB_ROUNDS=N sets the interleaved rounds (default 3).
bench-web: tools wasm
	@scripts/ensure-chromium.sh
	scripts/ensure-wllama.sh
	MODE_BENCH_WEB=1 $(GO) test -count=1 -run '^TestBenchWeb(CPU)?$$' -v -timeout 60m ./e2e

# The CPU path on 1 and 2 workers (expert peers) in headless Chromium:
# tokens/s, peak memory, each instance's wasm memory and the exchange's
# latency (TestBenchWorkers). BENCH_WORKERS_B=dir measures another source
# tree of the project beside this one, interleaved (say a `git archive`
# of an older commit that has modePeerRoundTrips).
bench-workers: tools
	@scripts/ensure-chromium.sh
	MODE_BENCH_WEB=1 MODE_BENCH_WORKERS_B=$(BENCH_WORKERS_B) $(GO) test -tags purego -count=1 -run '^TestBenchWorkers$$' -v -timeout 60m ./e2e

# Import of a ~6 GB synthetic f32 checkpoint: throughput and peak RSS
# (streamed tensor by tensor, so RSS stays far below the model's size).
bench-import-large: build
	rm -rf $(BENCH_TMP) && mkdir -p $(BENCH_TMP)
	$(BIN)/modelpack synth --arch mixtral --dim 2048 --layers 5 --ffn 5632 --experts 8 --top-k 2 \
	  --heads 16 --kv-heads 4 --vocab 32000 -o $(BENCH_TMP)/src
	$(BIN)/modelpack import $(BENCH_TMP)/src -o $(BENCH_TMP)/pack --quant q4_0 --stats
	rm -rf $(BENCH_TMP)

# Runs of every fuzz target, FUZZTIME each (a count such as 1000000x, or a
# duration); seeds live in each package's testdata/fuzz. The packages are
# those whose tests define a Fuzz function. Minimising a newly interesting
# input is capped at FUZZMINIMIZE so that one large input cannot hold a
# worker for the default minute.
# `make fuzz FUZZTIME=1000000x` is long: measured one target at a time
# (-parallel 1, on 2 shared cores) most targets run 1M inputs in 1-4
# minutes, but the slow ones run 400-5,000 inputs a second:
# FuzzValidateDims (~450/s, ~40 min), hfrepo FuzzIndexHeader (~600/s,
# ~30 min), tokenizer FuzzLoadLlama2C (~1,400/s), gguf FuzzReader and
# tokenizer FuzzEncodeDecode (~2,000-3,000/s): about 2.5 hours in all.
FUZZTIME ?= 200000x
FUZZMINIMIZE ?= 2s
fuzz: tools
	@for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v node_modules | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$dir $$f"; \
	    ( set -o pipefail; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$dir 2>&1 | grep -v '^fuzz: elapsed' ) || exit 1; \
	  done; done

clean:
	rm -rf $(BIN)
