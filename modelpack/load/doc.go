// Package load opens whatever a user points the tools at — a llama2.c
// checkpoint or an HF model directory — and returns the model with its
// tokenizer, choosing the reader by what is on disk.
package load
