// Command ui is the chat page (package ui) compiled to WebAssembly. It runs
// on the page's main thread and drives the engine through mode.js, whose
// Web Worker runs the model; web/ui/index.html loads both.
package main
