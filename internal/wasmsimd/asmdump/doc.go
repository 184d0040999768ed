// Command asmdump prints the x86-64 (or arm64) code that wazero compiles
// internal/wasmsimd's kernel module to, the module importing its memory
// as in the engine, for reading what each WebAssembly instruction costs:
//
//	go run ./internal/wasmsimd/asmdump -kernel q4_0 | less
//
// It compiles the module with a compilation cache in a temporary
// directory and reads the machine code back from the cache file (the
// layout of wazero v1.12's engine_cache.go: magic "WAZEVO", version,
// function count, offsets, code), so it needs no debug build of wazero;
// with -kernel it disassembles that function with objdump, else it lists
// every kernel's offset and size. -o keeps the raw code.
package main
