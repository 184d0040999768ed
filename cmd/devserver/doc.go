// Command devserver serves the web page, the wasm build and any number of
// packs for development and end-to-end tests: Range requests, ETags,
// immutable caching of content-addressed shards, CORS for embedding,
// COOP/COEP, optional network throttling and latency, a log line per shard
// request, and (with --faults) injectable failures. Files are opened
// through os.Root, so no request reaches outside the served directories.
// With --hf DIR it also serves DIR/ORG/REPO/ in the Hugging Face Hub's URL
// layout (/hf/ORG/REPO/resolve/REVISION/FILE, LFS files redirected to a
// content-addressed /hf-cdn/ URL; see hf.go for what the hub does and where
// that is documented), so `hf:` model locations can be tested offline.
//
// It is reachable by any page a developer's browser opens, so it answers
// like a careful production server: every response says nosniff; only
// assets (packs, the wasm, the page's files) allow any origin, never the
// /__faults test-control endpoint; the pages (/ and /ui/) carry a
// Content-Security-Policy allowing their own scripts, the hashes of their
// inline modules, WebAssembly compilation and the engine's Worker; at most
// 16 non-overlapping ranges are served per request (anything else is 416);
// paths over 1 KiB are 414; and slow clients are dropped by header, read
// and idle timeouts and a write deadline per chunk of body, which lets a
// throttled download of any size finish.
package main
