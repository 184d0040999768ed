// Package manifest owns the schema of a MoDE pack's manifest.json: the
// model config, tokenizer, chat template and quantisation, and the list of
// content-addressed shards with the tensors inside each. It parses and
// validates manifests; it does no I/O beyond bytes it is given.
//
// It lives with the runtime that reads packs; modelpack, which writes
// them, imports it, so the runtime depends on no part of modelpack.
//
// docs/pack-format.md is the human-readable description of this schema.
package manifest
