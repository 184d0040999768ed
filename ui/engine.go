package ui

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vugu/vugu/js"
)

// The engine runs in mode.js's Web Worker; this file is the thin bridge to
// mode.js (which the page sets as window.mode). Values cross as JSON, so
// the Go side needs no knowledge of JS object layout beyond the API.
//
// Every function here blocks on JS promises: call them on goroutines of
// their own, never inside a js.FuncOf callback or a vugu event handler
// (a blocked callback stops the JS event loop that would settle them).

// await waits for p (a promise or a plain value) to settle.
func await(p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	ok := js.FuncOf(func(_ js.Value, a []js.Value) any {
		ch <- result{v: arg(a)}
		return nil
	})
	fail := js.FuncOf(func(_ js.Value, a []js.Value) any {
		ch <- result{err: jsError(arg(a))}
		return nil
	})
	defer ok.Release()
	defer fail.Release()
	js.Global().Get("Promise").Call("resolve", p).Call("then", ok, fail)
	r := <-ch
	return r.v, r.err
}

func arg(a []js.Value) js.Value {
	if len(a) == 0 {
		return js.Undefined()
	}
	return a[0]
}

// jsError turns a rejection (a ModeError, an Error or anything) into an
// error that keeps mode.js's message, which is written for people.
func jsError(v js.Value) error {
	if v.Type() == js.TypeObject {
		if m := v.Get("message"); m.Type() == js.TypeString {
			if c := v.Get("code"); c.Type() == js.TypeString {
				return &ModeError{Code: c.String(), Message: m.String()}
			}
			return errors.New(m.String())
		}
	}
	return fmt.Errorf("%v", js.Global().Call("String", v).String())
}

// toJS converts a Go value to a JS value through JSON.
func toJS(x any) (js.Value, error) {
	b, err := json.Marshal(x)
	if err != nil {
		return js.Undefined(), err
	}
	return js.Global().Get("JSON").Call("parse", string(b)), nil
}

// fromJS decodes a JS value into out through JSON.
func fromJS(v js.Value, out any) error {
	s := js.Global().Get("JSON").Call("stringify", v)
	if s.Type() != js.TypeString {
		return errors.New("value is not JSON")
	}
	return json.Unmarshal([]byte(s.String()), out)
}

// Engine is a loaded model.
type Engine struct {
	v js.Value
	Info
}

// Info is what the worker says of a model it loaded (engine.info in
// mode.js).
type Info struct {
	// Backend is what runs the model ("cpu" or "webgpu") and BackendNote
	// why that one.
	Backend     string `json:"backend"`
	BackendNote string `json:"backendNote"`
	// ChatTemplate names the chat format; ChatTemplateNote says why the
	// pack's own template is not used (it could not be parsed, say).
	ChatTemplate     string `json:"chatTemplate"`
	ChatTemplateNote string `json:"chatTemplateNote"`
	// ExpertBytes is the size of all routed experts' shards.
	ExpertBytes int64 `json:"expertBytes"`
}

type loadOptions struct {
	Model          string  `json:"model"`
	HFEndpoint     string  `json:"hfEndpoint,omitempty"`
	ExpertBudgetMB float64 `json:"expertBudgetMB"`
	Cache          string  `json:"cache"`
	Backend        string  `json:"backend"`
}

// Load creates an engine for s; progress is called (on its own goroutine,
// in order) while the model loads.
func Load(s Settings, progress func(Progress)) (*Engine, error) {
	mode := js.Global().Get("mode")
	if !mode.Truthy() {
		return nil, errors.New("mode.js is not loaded: the page must import it and set window.mode")
	}
	cache := "none"
	if s.Cache {
		cache = "cache-storage"
	}
	opts, err := toJS(loadOptions{Model: s.Model, HFEndpoint: s.HFEndpoint, ExpertBudgetMB: s.ExpertBudgetMB, Cache: cache, Backend: s.backend()})
	if err != nil {
		return nil, err
	}
	// The callback must not block (it runs on the JS event loop): it hands
	// reports to a goroutine; when that falls behind, reports are dropped
	// except the latest ones still queued.
	ch := make(chan Progress, 32)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range ch {
			progress(p)
		}
	}()
	cb := js.FuncOf(func(_ js.Value, a []js.Value) any {
		var p Progress
		if fromJS(arg(a), &p) == nil {
			select {
			case ch <- p:
			default:
			}
		}
		return nil
	})
	// Value.Set cannot take a vugu js.Func; Call converts its arguments.
	js.Global().Get("Reflect").Call("set", opts, "onProgress", cb)
	v, err := await(mode.Call("create", opts))
	cb.Release()
	close(ch)
	<-done
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", s.Model, err)
	}
	e := &Engine{v: v}
	if info := v.Get("info"); info.Truthy() {
		if err := fromJS(info, &e.Info); err != nil {
			return nil, fmt.Errorf("loading %s: engine.info: %w", s.Model, err)
		}
	}
	return e, nil
}

type chatRequest struct {
	Messages    []Message `json:"messages"`
	Stream      bool      `json:"stream"`
	Temperature float64   `json:"temperature"`
	TopP        float64   `json:"top_p"`
	MaxTokens   int       `json:"max_tokens"`
}

// Reply is how a reply ended: its finish reason, and what the session
// changed to serve it (from the final chunk).
type Reply struct {
	Finish  string
	Note    string // for people: messages left out, max tokens clamped
	Dropped int    // how many of the oldest messages sent were left out
}

// Chat streams the reply to messages, calling delta for each piece of
// text.
func (e *Engine) Chat(messages []Message, s Settings, delta func(string)) (Reply, error) {
	var r Reply
	req, err := toJS(chatRequest{Messages: messages, Stream: true, Temperature: s.Temperature, TopP: s.TopP, MaxTokens: s.MaxTokens})
	if err != nil {
		return r, err
	}
	stream, err := await(e.v.Get("chat").Get("completions").Call("create", req))
	if err != nil {
		return r, err
	}
	// JS values cannot be indexed by a symbol from Go: Reflect.get can.
	g := js.Global()
	iter := g.Get("Reflect").Call("get", stream, g.Get("Symbol").Get("asyncIterator")).Call("call", stream)
	for {
		next, err := await(iter.Call("next"))
		if err != nil {
			return r, err
		}
		if next.Get("done").Truthy() {
			return r, nil
		}
		chunk := next.Get("value")
		if n := chunk.Get("note"); n.Type() == js.TypeString {
			r.Note = n.String()
		}
		if d := chunk.Get("dropped_messages"); d.Type() == js.TypeNumber {
			r.Dropped = d.Int()
		}
		choices := chunk.Get("choices")
		if choices.Type() != js.TypeObject || choices.Length() == 0 {
			continue
		}
		c := choices.Index(0)
		if d := c.Get("delta"); d.Type() == js.TypeObject {
			if t := d.Get("content"); t.Type() == js.TypeString && t.String() != "" {
				delta(t.String())
			}
		}
		if f := c.Get("finish_reason"); f.Type() == js.TypeString {
			r.Finish = f.String()
		}
	}
}

// Interrupt stops the running generation.
func (e *Engine) Interrupt() error {
	_, err := await(e.v.Call("interrupt"))
	return err
}

// Stats reads engine.stats().
func (e *Engine) Stats() (Stats, error) {
	v, err := await(e.v.Call("stats"))
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	if err := fromJS(v, &st); err != nil {
		return Stats{}, fmt.Errorf("engine.stats(): %w", err)
	}
	return st, nil
}

// Unload frees the engine and its worker.
func (e *Engine) Unload() error {
	_, err := await(e.v.Call("unload"))
	return err
}

// fetchText GETs url relative to the page.
func fetchText(url string) (string, error) {
	resp, err := await(js.Global().Call("fetch", url))
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", url, err)
	}
	if !resp.Get("ok").Truthy() {
		return "", fmt.Errorf("fetching %s: status %d", url, resp.Get("status").Int())
	}
	t, err := await(resp.Call("text"))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", url, err)
	}
	return t.String(), nil
}

// ListPacks reads the devserver's list of packs; other servers have none.
func ListPacks(url string) ([]Pack, error) {
	t, err := fetchText(url)
	if err != nil {
		return nil, err
	}
	var ps []Pack
	if err := json.Unmarshal([]byte(t), &ps); err != nil {
		return nil, fmt.Errorf("%s is not a list of packs: %w", url, err)
	}
	return ps, nil
}

// CopyText puts s on the clipboard.
func CopyText(s string) error {
	cb := js.Global().Get("navigator").Get("clipboard")
	if !cb.Truthy() {
		return errors.New("the clipboard is not available here")
	}
	_, err := await(cb.Call("writeText", s))
	return err
}

// Store keeps the conversation and settings in localStorage, so that they
// survive a reload, and the draft under a key of its own, so that typing
// does not rewrite the whole conversation.
type Store struct {
	key string
}

// NewStore returns a store under key.
func NewStore(key string) *Store { return &Store{key: key} }

// Saved is what a Store holds.
type Saved struct {
	Settings Settings  `json:"settings"`
	Messages []Message `json:"messages"`
}

// Load returns what was saved, or defaults.
func (s *Store) Load() Saved {
	out := Saved{Settings: DefaultSettings()}
	ls := js.Global().Get("localStorage")
	if !ls.Truthy() {
		return out
	}
	v := ls.Call("getItem", s.key)
	if v.Type() != js.TypeString {
		return out
	}
	if err := json.Unmarshal([]byte(v.String()), &out); err != nil {
		return Saved{Settings: DefaultSettings()} // damaged: start afresh rather than fail
	}
	return out
}

// Save writes v; it fails when storage is full or disabled.
func (s *Store) Save(v Saved) (err error) {
	ls := js.Global().Get("localStorage")
	if !ls.Truthy() {
		return errors.New("no localStorage")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// setItem throws (QuotaExceededError), which syscall/js turns into a panic.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("saving the conversation: %v", r)
		}
	}()
	ls.Call("setItem", s.key, string(b))
	return nil
}

func (s *Store) draftKey() string { return s.key + ".draft" }

// LoadDraft returns the message being written when the page was left.
func (s *Store) LoadDraft() string {
	ls := js.Global().Get("localStorage")
	if !ls.Truthy() {
		return ""
	}
	if v := ls.Call("getItem", s.draftKey()); v.Type() == js.TypeString {
		return v.String()
	}
	return ""
}

// SaveDraft keeps the message being written; an empty one is removed.
func (s *Store) SaveDraft(d string) (err error) {
	ls := js.Global().Get("localStorage")
	if !ls.Truthy() {
		return errors.New("no localStorage")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("saving the draft: %v", r)
		}
	}()
	if d == "" {
		ls.Call("removeItem", s.draftKey())
	} else {
		ls.Call("setItem", s.draftKey(), d)
	}
	return nil
}
