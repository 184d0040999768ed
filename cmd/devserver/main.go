package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (port 0 picks a free one)")
	fs.StringVar(&c.web, "web", "web", "directory of the page, worker and widget")
	fs.StringVar(&c.wasm, "wasm", "bin/mode.wasm", "the wasm build (a .gz or .br beside it is served to clients that accept it)")
	fs.StringVar(&c.models, "models", "", "directory whose subdirectories are packs, served under /packs/NAME/")
	fs.StringVar(&c.hf, "hf", "", "directory of ORG/REPO model repositories served in the Hugging Face Hub's layout under /hf/ (endpoint http://ADDR/hf)")
	throttle := fs.String("throttle", "", "bandwidth shared by all responses, e.g. 50mbit, 2MB (per second)")
	fs.DurationVar(&c.latency, "latency", 0, "delay before each response, e.g. 40ms")
	logPath := fs.String("log", "", "file for one JSON line per pack request (- for stderr)")
	fs.BoolVar(&c.faults, "faults", false, "enable POST /__faults to inject failures (tests only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "devserver: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *throttle != "" {
		bps, err := parseRate(*throttle)
		if err != nil {
			fmt.Fprintf(stderr, "devserver: --throttle: %v\n", err)
			return 2
		}
		c.bytesPerSec = bps
	}
	switch *logPath {
	case "":
	case "-":
		c.log = stderr
	default:
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "devserver: %v\n", err)
			return 1
		}
		defer f.Close()
		c.log = f
	}
	s, err := newServer(c)
	if err != nil {
		fmt.Fprintf(stderr, "devserver: %v\n", err)
		return 1
	}
	defer s.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "devserver: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "listening on http://%s/\n", ln.Addr())
	srv := newHTTPServer(s, defaultTimeouts)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "devserver: %v\n", err)
		return 1
	}
	return 0
}
