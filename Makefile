# mode: see README.md. `make demo` and `make test` work on a fresh Debian
# machine: they install what they need (scripts/ensure-*.sh).

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
GO ?= go
BIN := bin
SHARED ?= $(abspath ../shared)
# Where `make demo` keeps models it downloaded when ../shared is absent.
MODE_CACHE ?= $(HOME)/.cache/mode
TEST_TIMEOUT ?= 25m

.PHONY: all build test vet demo bench fuzz clean tools

all: build

tools:
	@scripts/ensure-go.sh

build: tools
	$(GO) build -o $(BIN)/mode ./cmd/mode

vet: tools
	$(GO) vet ./...

test: tools vet
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

# Generates text from the default model: stories260K from ../shared, or a
# copy downloaded into $(MODE_CACHE).
demo: build
	@model=$$(scripts/default-model.sh "$(SHARED)" "$(MODE_CACHE)") && \
	  echo "mode run -m $$model -p 'Once upon a time' -n 200" && \
	  $(BIN)/mode run -m "$$model" -p "Once upon a time" -n 200

bench: build
	@model=$$(scripts/default-model.sh "$(SHARED)" "$(MODE_CACHE)") && \
	  $(BIN)/mode bench -m "$$model" --prompt-tokens 128 --decode-tokens 256
	$(BIN)/mode bench --synth mixtral --prompt-tokens 64 --decode-tokens 32
	$(GO) test -run '^$$' -bench . -benchtime 20x ./runtime/cpu ./runtime/sample

# Short runs of every fuzz target; seeds live in each package's testdata/fuzz.
FUZZTIME ?= 20s
fuzz: tools
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; done

clean:
	rm -rf $(BIN)
