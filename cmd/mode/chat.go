package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"

	"github.com/moderuntime/mode/runtime/session"
)

type chatFlags struct {
	engineFlags
	wasm   string
	system string
	n      int
	temp   float64
	topP   float64
	seed   uint64
}

func parseChat(args []string, stderr io.Writer) (*chatFlags, error) {
	fs := flag.NewFlagSet("mode chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &chatFlags{}
	f.engineFlags.register(fs)
	fs.StringVar(&f.system, "system", "", "system prompt, kept however long the conversation grows")
	fs.IntVar(&f.n, "n", 256, "most tokens per reply (0: as many as the context holds)")
	fs.Float64Var(&f.temp, "temp", 0, "temperature (0: greedy)")
	fs.Float64Var(&f.topP, "top-p", 1, "nucleus sampling threshold (1: off)")
	fs.Uint64Var(&f.seed, "seed", 0, "base sampling seed: each reply draws the next seed from it")
	fs.StringVar(&f.wasm, "wasm", "", "run the wasip1 build of mode (this file) under wazero instead; MODEL must be a pack")
	if err := parseCommand(fs, args, &f.model, &f.n, stderr); err != nil {
		return nil, err
	}
	return f, nil
}

// cmdChat is a conversation on stdin: each line is a user message, whose
// reply streams to stdout. The session keeps the conversation in the KV
// cache, so a turn prefills only its new message, and leaves out the
// oldest turns when the context is full. "/reset" starts over; "/quit" or
// the end of stdin ends. Prompts and per-turn token counts go to stderr,
// so stdout holds only the replies.
func cmdChat(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f, err := parseChat(args, stderr)
	if err != nil {
		return err
	}
	if f.wasm != "" {
		return runUnderWasm(f.wasm, f.model, "chat", args, f.threads, stdin, stdout, stderr)
	}
	if f.backend == "webgpu" && forwardsWebGPU {
		return forwardWebGPU("chat", args, stdin, stdout, stderr) // backend_forward.go
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	e, ld, pk, b, err := f.start(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	if pk != nil {
		defer pk.Close() // before the backend: no fetch outlives the engine
	}
	s, err := session.New(e, session.Options{Tokenizer: ld.Tokenizer, AddBOS: ld.AddBOS, ChatTemplate: ld.ChatTemplate, Model: f.model, Seed: f.seed})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "mode chat: %s (%s format, context %d tokens); /reset starts over, /quit ends\n", f.model, s.Template(), e.MaxSeq())
	var system []session.Message
	if f.system != "" {
		system = []session.Message{{Role: "system", Content: f.system}}
	}
	msgs := system
	in := bufio.NewScanner(stdin)
	in.Buffer(nil, 1<<20)
	for {
		fmt.Fprint(stderr, "> ")
		if !in.Scan() {
			fmt.Fprintln(stderr)
			return in.Err()
		}
		line := strings.TrimSpace(in.Text())
		switch line {
		case "":
			continue
		case "/quit":
			return nil
		case "/reset":
			msgs = system
			s.Reset()
			fmt.Fprintln(stderr, "(a new conversation)")
			continue
		}
		msgs = append(msgs, session.Message{Role: "user", Content: line})
		r := session.Request{Messages: msgs, Stream: true, Temperature: &f.temp, TopP: &f.topP, MaxTokens: f.n}
		var werr error
		c, err := s.Chat(ctx, r, func(c *session.Completion) {
			if d := c.Choices[0].Delta; d != nil && werr == nil {
				_, werr = io.WriteString(stdout, d.Content)
			}
		})
		var se *session.Error
		if errors.As(err, &se) && se.Code == session.CodeBadRequest {
			// The message cannot be answered (too long, say): drop it and
			// let the user try another.
			msgs = msgs[:len(msgs)-1]
			fmt.Fprintf(stderr, "mode chat: %v\n", err)
			continue
		}
		if err != nil {
			return err
		}
		if _, err := io.WriteString(stdout, "\n"); err != nil || werr != nil {
			return errors.Join(werr, err)
		}
		msgs = append(msgs, *c.Choices[0].Message)
		if c.DroppedMessages > 0 {
			// The session left those out: stop sending them.
			msgs = append(slices.Clone(system), msgs[len(system)+c.DroppedMessages:]...)
		}
		u := c.Usage
		fmt.Fprintf(stderr, "[%d prompt tokens: %d cached, %d prefilled; %d generated; %s]\n",
			u.Prompt, u.PromptDetails.CachedTokens, u.PrefilledTokens, u.Completion, *c.Choices[0].FinishReason)
		if c.Note != "" {
			fmt.Fprintf(stderr, "(%s)\n", c.Note)
		}
		if *c.Choices[0].FinishReason == "abort" {
			return ctx.Err()
		}
	}
}
