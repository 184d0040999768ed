// Package load opens a model a user points the CLI at — an HF directory, a
// GGUF file, a llama2.c checkpoint, or (Pack, Any) a MoDE pack with every
// routed expert fetched — whole into memory with its tokenizer, ready for
// the engine. It reads sources through modelpack/importer and packs through
// runtime/loader, so every format the packer accepts also runs directly.
package load
