// Package shard fetches the bytes of a pack's shards and side files.
//
// A Source reads byte ranges of files named relative to a base: Dir for a
// local directory, HTTP for a URL. HTTP sends Range requests, resumes a
// body cut short, retries transient failures with backoff, limits the
// requests in flight and revalidates whole-file reads with ETags. Fetch
// (or a Fetcher, which also reaches pieces at absolute URLs) assembles a
// manifest.Shard from its pieces (the separate ranges of a small shard,
// such as an hf: expert sliced out of fused tensors, requested together)
// and checks its size and sha256, so a caller gets verified bytes or an
// error saying which shard and why.
//
// Open picks the Source for a manifest location given on a command line or
// in a page: an http(s) URL or a local path.
package shard
