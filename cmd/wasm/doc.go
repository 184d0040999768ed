// Command wasm is the mode runtime for browsers: mode.wasm, run by
// web/worker.js inside a dedicated Web Worker. It answers the page's
// requests (see protocol.go) with a CPU backend; shards are fetched with
// the browser's fetch and kept in Cache Storage. Outside js/wasm it builds
// to a stub so `go build ./...` and the native session tests work.
//
// The same mode.wasm also runs as an expert peer (worker.js's role=peer,
// peers_js.go): a cpu.PeerServer holding shares of the routed experts,
// which the engine instance starts for a second core and exchanges with
// through a SharedArrayBuffer and Atomics.wait on both sides.
package main
