// Command modelpack makes and checks MoDE packs: `import` converts an HF
// directory, GGUF file or llama2.c checkpoint into a pack of per-expert
// shards, `synth` writes small random test models, `verify` checks a pack's
// files against its manifest, `inspect` reports its layout and quantisation
// error.
package main
