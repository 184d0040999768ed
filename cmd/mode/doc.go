// Command mode runs models headless: `mode run` generates text from a
// llama2.c checkpoint or an HF model directory, `mode chat` holds a
// conversation on stdin (runtime/session), `mode bench` measures prefill
// and decode speed.
package main
