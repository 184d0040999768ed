// Package engine owns the model graph: it runs a model.Model on any
// backend.Backend, one batch of tokens at a time (a prompt is one batch, or
// several of MaxBatch rows; decode is a batch of one), keeping the KV cache
// position, routing each sparse layer's tokens to their experts, loading
// routed experts on first use, and returning the logits of the last token.
// Generate adds sampling and stop tokens on top.
package engine
