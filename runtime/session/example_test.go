package session_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moderuntime/mode/modelpack/load"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/session"
)

// A conversation: each request carries the whole conversation, as with
// OpenAI's API, and the session prefills only what its KV cache does not
// hold yet.
func Example() {
	// A small random Mixtral with an HF tokenizer and a ChatML template;
	// a real model loads the same way.
	dir, err := os.MkdirTemp("", "session-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := synth.Write(filepath.Join(dir, "m"), synth.Default("mixtral")); err != nil {
		panic(err)
	}
	ld, err := load.Open(filepath.Join(dir, "m"), "")
	if err != nil {
		panic(err)
	}
	eng, err := engine.New(cpu.New(cpu.Options{}), ld.Model, engine.Options{})
	if err != nil {
		panic(err)
	}
	s, err := session.New(eng, session.Options{Tokenizer: ld.Tokenizer, AddBOS: ld.AddBOS, ChatTemplate: ld.ChatTemplate, Model: "mixtral"})
	if err != nil {
		panic(err)
	}
	fmt.Println("template:", s.Template())

	greedy := 0.0
	msgs := []session.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hello!"}}
	for _, next := range []string{"Tell me more.", ""} {
		c, err := s.Chat(context.Background(), session.Request{Messages: msgs, Temperature: &greedy, MaxTokens: 8}, nil)
		if err != nil {
			panic(err)
		}
		u := c.Usage
		fmt.Printf("prompt %d tokens: %d from the cache, %d prefilled\n", u.Prompt, u.PromptDetails.CachedTokens, u.PrefilledTokens)
		if next != "" {
			msgs = append(msgs, *c.Choices[0].Message, session.Message{Role: "user", Content: next})
		}
	}
	// The second prompt reuses the first and as much of the reply as its
	// rendering tokenizes the same (a random model's reply, little).

	// Output:
	// template: jinja
	// prompt 38 tokens: 0 from the cache, 38 prefilled
	// prompt 76 tokens: 39 from the cache, 37 prefilled
}
