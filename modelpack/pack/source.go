package pack

import "github.com/moderuntime/mode/modelpack/source"

// The writer's input types are defined in modelpack/source, so that
// readers and the CLI's loader need not link the writer; these names keep
// the writer's API whole.
type (
	// Source yields a model's tensors one at a time (source.Source).
	Source = source.Source
	// Tokenizer is what a pack embeds to tokenize (source.Tokenizer).
	Tokenizer = source.Tokenizer
	// ModelSource serves an in-memory model (source.ModelSource).
	ModelSource = source.ModelSource
	// Formatter says which format each tensor is best kept in
	// (source.Formatter).
	Formatter = source.Formatter
	// Fixed keeps some tensors in their stored format (source.Fixed).
	Fixed = source.Fixed
)
