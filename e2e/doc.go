// Package e2e holds the end-to-end tests that drive real headless Chromium
// (through chromedp) against the devserver: the browser runtime's output
// must equal the native engine's, it must fetch only the shards of routed
// experts, and a reload must be served from the shard cache.
package e2e
