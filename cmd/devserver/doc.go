// Command devserver serves the web page, the wasm build and any number of
// packs for development and end-to-end tests: Range requests, ETags,
// immutable caching of content-addressed shards, CORS for embedding,
// COOP/COEP, optional network throttling and latency, a log line per shard
// request, and (with --faults) injectable failures. Files are opened
// through os.Root, so no request reaches outside the served directories.
package main
