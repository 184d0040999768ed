//go:build !js

package main

import (
	"fmt"
	"os"
)

// The runtime only makes sense inside a browser's Web Worker; building it
// for the host keeps `go vet ./...` and the package's tests working.
func main() {
	fmt.Fprintln(os.Stderr, "mode.wasm runs in a browser: build it with GOOS=js GOARCH=wasm go build -o bin/mode.wasm ./cmd/wasm")
	os.Exit(2)
}
