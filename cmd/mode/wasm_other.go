//go:build wasip1 || js

package main

import (
	"context"
	"errors"
	"io"
)

func runWasm(context.Context, string, []string, int, io.Reader, io.Writer, io.Writer) (int, error) {
	return 1, errors.New("--wasm: this build is itself wasm; run the native mode")
}

func wasmGuests(int) int { return 1 }
