//go:build js && wasm

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall/js"
	"time"
)

func main() {
	if js.Global().Get("modeRole").String() == "peer" {
		runPeer()
		return
	}
	store, note := openCacheStorage("mode-shards-v1")
	s := newSession(env{
		store:     store,
		storeNote: note,
		// Go on js has one thread: more goroutines only add switching.
		threads: 1,
		yield:   func() { time.Sleep(time.Millisecond) },
		logf:    func(format string, args ...any) { fmt.Printf("mode: "+format+"\n", args...) },
		gpu:     openWebGPU,
		peers:   startPeers,
	})
	post := js.Global().Get("postMessage")
	jsonParse := js.Global().Get("JSON").Get("parse")
	var sendMu sync.Mutex
	send := func(r reply) {
		b, err := json.Marshal(r)
		if err != nil {
			b, _ = json.Marshal(reply{ID: r.ID, Type: "error", Error: &errorMsg{Code: "internal", Message: "encoding a reply: " + err.Error()}})
		}
		sendMu.Lock()
		defer sendMu.Unlock()
		post.Invoke(jsonParse.Invoke(string(b)))
	}
	ctx := context.Background()
	handle := js.FuncOf(func(_ js.Value, args []js.Value) any {
		var r request
		if len(args) == 0 || json.Unmarshal([]byte(args[0].String()), &r) != nil {
			send(reply{Type: "error", Error: &errorMsg{Code: "bad_request", Message: "a request must be {id, op, params}"}})
			return nil
		}
		// Requests fetch and await promises, which would deadlock inside
		// this callback: run them on their own goroutine.
		go s.handle(ctx, r, send)
		return nil
	})
	js.Global().Call("modeRegister", handle)
	select {}
}

// cacheStorage is a blobStore in the browser's Cache Storage.
type cacheStorage struct {
	name string

	mu    sync.Mutex
	cache js.Value // the opened cache, once opened
}

// openCacheStorage returns the store, or nil and the reason it is missing.
func openCacheStorage(name string) (blobStore, string) {
	if c := js.Global().Get("caches"); c.IsUndefined() || c.IsNull() {
		return nil, "Cache Storage is not available here (it needs a secure context: https or http://localhost); shards are downloaded on every visit"
	}
	return &cacheStorage{name: name}, ""
}

func (c *cacheStorage) open(ctx context.Context) (js.Value, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache.Truthy() {
		return c.cache, nil
	}
	v, err := await(ctx, js.Global().Get("caches").Call("open", c.name))
	if err != nil {
		return js.Value{}, fmt.Errorf("opening cache %q: %w", c.name, err)
	}
	c.cache = v
	return v, nil
}

func (c *cacheStorage) Get(ctx context.Context, key string) ([]byte, bool, error) {
	cache, err := c.open(ctx)
	if err != nil {
		return nil, false, err
	}
	resp, err := await(ctx, cache.Call("match", key))
	if err != nil {
		return nil, false, err
	}
	if resp.IsUndefined() || resp.IsNull() {
		return nil, false, nil
	}
	buf, err := await(ctx, resp.Call("arrayBuffer"))
	if err != nil {
		return nil, false, err
	}
	u8 := js.Global().Get("Uint8Array").New(buf)
	b := make([]byte, u8.Get("length").Int())
	js.CopyBytesToGo(b, u8)
	return b, true, nil
}

func (c *cacheStorage) Put(ctx context.Context, key string, b []byte) error {
	cache, err := c.open(ctx)
	if err != nil {
		return err
	}
	u8 := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(u8, b)
	headers := js.ValueOf(map[string]any{"content-type": "application/octet-stream"})
	resp := js.Global().Get("Response").New(u8, js.ValueOf(map[string]any{"headers": headers}))
	_, err = await(ctx, cache.Call("put", key, resp))
	return err
}

// await blocks the calling goroutine until promise p settles. It must not
// be called from a js.FuncOf callback, which would deadlock.
func await(ctx context.Context, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	var then, catch js.Func
	release := func() { then.Release(); catch.Release() }
	then = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{v: arg(args)}
		return nil
	})
	catch = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{err: jsError(arg(args))}
		return nil
	})
	p.Call("then", then, catch)
	select {
	case r := <-ch:
		release()
		return r.v, r.err
	case <-ctx.Done():
		go func() { <-ch; release() }() // the callbacks must outlive the promise
		return js.Value{}, ctx.Err()
	}
}

func arg(args []js.Value) js.Value {
	if len(args) == 0 {
		return js.Undefined()
	}
	return args[0]
}

func jsError(v js.Value) error {
	if v.Type() == js.TypeObject {
		if m := v.Get("message"); m.Type() == js.TypeString {
			return errors.New(m.String())
		}
	}
	return errors.New(js.Global().Get("String").Invoke(v).String())
}
