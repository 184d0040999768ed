// Command mode runs models headless: `mode run` generates text from a
// llama2.c checkpoint or an HF model directory, `mode chat` holds a
// conversation on stdin (runtime/session), `mode bench` measures prefill
// and decode speed.
//
// The default build is pure Go (CGO_ENABLED=0): mode runs --backend
// webgpu through mode-webgpu, this command built with -tags webgpu (cgo
// and wgpu-native), found beside it or on PATH (backend_forward.go).
package main
