//go:build !(js && wasm)

package main

// openOPFS: outside a browser there is no Origin Private File System.
func openOPFS(string) (blobStore, string) {
	return nil, "this build has no Origin Private File System; shards are downloaded on every load"
}

// platformEstimate: outside a browser the quota is unknown.
func platformEstimate() estimateFunc { return nil }
