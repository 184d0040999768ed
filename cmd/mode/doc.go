// Command mode runs models headless: `mode run` generates text from a
// llama2.c checkpoint or an HF model directory, `mode bench` measures
// prefill and decode speed.
package main
