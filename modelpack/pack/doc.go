// Package pack writes, verifies and inspects MoDE packs: a directory with
// manifest.json and content-addressed shard files, one group of shards for
// the core, one per layer, and one per (layer, expert), so a client fetches
// only the experts its tokens are routed to. Writing streams tensor by
// tensor from a Source, so a model larger than memory can be packed.
package pack
