// Package importer opens a model for packing, whatever its source format —
// an HF directory, a GGUF file or a llama2.c checkpoint — as a streaming
// source.Source plus the tokenizer files and chat template to embed. A pack
// directory opens too, loaded whole, so a pack can be stored again in
// other formats.
package importer
