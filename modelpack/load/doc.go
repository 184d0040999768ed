// Package load opens a model a user points the CLI at — an HF directory, a
// GGUF file or a llama2.c checkpoint — whole into memory with its
// tokenizer, ready for the engine. It reads through modelpack/importer, so
// every source format the packer accepts also runs directly.
package load
