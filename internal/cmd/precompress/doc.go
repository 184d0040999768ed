// Command precompress writes NAME.br and NAME.gz beside each file it is
// given, at the highest compression levels, for servers that hand
// precompressed files to clients that accept them (cmd/devserver does for
// the wasm builds). It prints each file's size and its transfer sizes.
//
//	go run ./internal/cmd/precompress bin/mode.wasm web/ui/ui.wasm
package main
