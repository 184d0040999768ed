// Package loader opens a MoDE pack (or a manifest made by `modelpack index`)
// from a shard.Source: it fetches and verifies the tokenizer, the core and
// every layer's always-used shards, builds a model.Model without its routed
// experts, and then serves each routed expert on demand from its own shards
// — the engine's ExpertSource — counting what it fetched.
package loader
