//go:build !(js && wasm)

// Command ui is the chat page compiled to WebAssembly: build it with
// GOOS=js GOARCH=wasm (see web/ui/index.html).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "ui: build with GOOS=js GOARCH=wasm; the page web/ui/index.html loads it")
	os.Exit(2)
}
