package ui

import (
	"errors"
	"fmt"
	"testing"
)

func TestExplain(t *testing.T) {
	const load = "loading /packs/moe/manifest.json: "
	tests := []struct {
		name, err, want string
	}{
		{"nothing", "", ""},
		{"server stopped mid-download (issue #14)",
			load + `loading http://127.0.0.1:8080/packs/moe/manifest.json: shard core: Get "http://127.0.0.1:8080/packs/moe/shards/ab12": net/http: fetch() failed: TypeError: Failed to fetch (gave up after 5 attempts)`,
			"The model server stopped answering; check the connection and try again."},
		{"server unreachable before the manifest",
			load + `reading manifest http://127.0.0.1:1/packs/moe/manifest.json: Get "http://127.0.0.1:1/packs/moe/manifest.json": net/http: fetch() failed: TypeError: Failed to fetch (gave up after 5 attempts) (is the URL right and the server up?)`,
			"The model server stopped answering; check the connection and try again."},
		{"worker script unreachable",
			load + "could not start the worker from http://h/worker.js: the server may be unreachable; check the connection and try again",
			"The model server stopped answering; check the connection and try again."},
		{"404 on the manifest",
			"loading /packs/nope/manifest.json: reading manifest http://h/packs/nope/manifest.json: GET http://h/packs/nope/manifest.json: file missing at that URL (404 Not Found) (is the URL right and the server up?)",
			"No model at that address (404)."},
		{"404 on a shard is not a missing model",
			load + "loading http://h/packs/moe/manifest.json: shard layer.0: GET http://h/packs/moe/shards/ab: file missing at that URL (404 Not Found)",
			"A file of this model is missing on the server (404): the pack is incomplete or being replaced."},
		{"403",
			load + "reading manifest http://h/m.json: GET http://h/m.json: 403 Forbidden: signature expired (is the URL right and the server up?)",
			"The server refused to hand out the model (HTTP 403)."},
		{"500 after retries",
			load + "shard core: GET http://h/packs/moe/shards/ab: 503 Service Unavailable: injected failure (gave up after 5 attempts)",
			"The model server failed (HTTP 503); try again later."},
		{"the session's too long",
			"the system prompt and the last message are 40621 tokens; the context holds 512: shorten them",
			"The message is too long for this model: it is 40621 tokens and the model reads at most 512; shorten it."},
		{"a completion's too long",
			"the prompt is 600 tokens; the context holds 512: shorten it",
			"The message is too long for this model: it is 600 tokens and the model reads at most 512; shorten it."},
		{"damaged shard",
			load + "shard layer.0: sha256 mismatch after a refetch: manifest says 00, the bytes hash to 01",
			"A downloaded part of the model was damaged (its checksum did not match); try again."},
		{"not a manifest (an HTML page)",
			"loading /index.html: http://h/index.html: manifest: invalid character '<' looking for beginning of value",
			"That address does not hold a mode model: its manifest.json could not be read."},
		{"webgpu forced without it",
			load + `backend "webgpu" is unavailable (no adapter): use backend "cpu", or "auto" to take the best available`,
			"WebGPU is not available in this browser; choose auto or CPU as the backend in Settings."},
		{"no model", "no model chosen: pick one or enter a manifest URL or hf:ORG/REPO in Settings",
			"Choose a model in Settings first, or enter a model URL there."},
		{"storage full", "saving the conversation: QuotaExceededError: the quota has been exceeded",
			"The browser's storage for this page is full, so the conversation could not be saved; clear it or free some space."},
		{"unloaded", "the engine was unloaded", "The model was unloaded; send the message again to load it."},
		{"unknown", "engine: NaN in the logits at layer 3", "Something went wrong; the details are below."},
	}
	for _, tt := range tests {
		if got := Explain(tt.err); got != tt.want {
			t.Errorf("%s:\nExplain(%q)\n = %q\nwant %q", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestWorkerDied(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&ModeError{Code: "worker_failed", Message: "the mode runtime exited"}, true},
		{fmt.Errorf("generating: %w", &ModeError{Code: "worker_failed"}), true},
		{&ModeError{Code: "generate_failed", Message: "x"}, false},
		{errors.New("worker_failed"), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := workerDied(tt.err); got != tt.want {
			t.Errorf("workerDied(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
