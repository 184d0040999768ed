// Package safetensors reads and writes the safetensors format: an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype,
// shape and byte range, then the raw little-endian data.
//
// A Reader parses and validates only the header when it opens a file and
// reads one tensor at a time with ReadAt, so a multi-gigabyte checkpoint is
// never read whole. A Dir presents a Hugging Face model directory, either a
// single model.safetensors or shards listed by model.safetensors.index.json,
// as one namespace. A Writer produces files with deterministic bytes.
//
// Every error names the file and, where one is involved, the tensor.
package safetensors
