// Package source defines what a model reader hands on: a Source that
// yields a model's tensors one at a time by canonical name, the tokenizer
// files to embed, and ModelSource for a model already in memory. Readers
// (modelpack/importer) and the CLI's loader (modelpack/load) depend on
// these types alone, so a program that only runs models does not link the
// pack writer (modelpack/pack), which consumes them.
package source
