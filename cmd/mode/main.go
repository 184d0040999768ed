package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `mode runs Mixture-of-Experts language models.

Usage:
  mode run   -m MODEL [-z TOKENIZER] [-p PROMPT] [-n N] [--temp T] [--top-p P] [--seed S] [--ids]
  mode chat  -m MODEL [--system S] [-n N] [--temp T] [--seed S] [--ctx N]
  mode bench -m MODEL [--prompt-tokens N] [--decode-tokens N]
  mode bench -m PACK --gguf FILE --peer llama.cpp --threads N [--prompt-tokens 32,128] [--decode-tokens N] [--runs R]

MODEL is a llama2.c checkpoint (.bin) or an HF model directory.
Run 'mode run -h', 'mode chat -h' or 'mode bench -h' for every flag.
`

// wasmPeerCommand is the hidden subcommand that makes the wasip1 build an
// expert peer of another guest, which `mode run --wasm --threads N`
// starts (wasm_peers.go).
const wasmPeerCommand = "wasm-expert-peer"

// run is main without the process: it returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stdout, stderr)
	case "chat":
		err = cmdChat(args[1:], stdin, stdout, stderr)
	case "bench":
		err = cmdBench(args[1:], stdout, stderr)
	case wasmPeerCommand:
		err = servePeer()
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "mode: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == errUsage {
		return 2
	}
	if code, ok := err.(exitCode); ok {
		return int(code) // the guest already printed its error
	}
	if err != nil {
		fmt.Fprintf(stderr, "mode: %v\n", err)
		return 1
	}
	return 0
}
