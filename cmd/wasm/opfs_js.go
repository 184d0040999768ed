//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall/js"
)

// opfs is a blobStore in the Origin Private File System: one file per key
// under a directory of the origin's private root, e.g.
// mode-shards-v1/sha256/<hex>. Writes go through createWritable, which
// writes a swap file and replaces the target on close, so a visit cut off
// mid-write leaves the old file or none, never half of one (and reads are
// checked against the hash anyway).
type opfs struct {
	name string

	mu   sync.Mutex
	root js.Value // the store's directory, once opened
}

// openOPFS returns the store, or nil and the reason it is missing.
func openOPFS(name string) (blobStore, string) {
	st := js.Global().Get("navigator").Get("storage")
	if !st.Truthy() || !st.Get("getDirectory").Truthy() {
		return nil, "the Origin Private File System is not available here (it needs a secure context: https or http://localhost); shards are downloaded on every visit"
	}
	return &opfs{name: name}, ""
}

// path splits a key (a URL path like /__mode_cache__/sha256/<hex>) into
// the directories under the store's root and the file name.
func (o *opfs) path(key string) (dirs []string, file string) {
	parts := strings.Split(strings.TrimPrefix(strings.TrimPrefix(key, "/"), "__mode_cache__/"), "/")
	return parts[:len(parts)-1], parts[len(parts)-1]
}

func (o *opfs) open(ctx context.Context) (js.Value, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.root.Truthy() {
		return o.root, nil
	}
	top, err := await(ctx, js.Global().Get("navigator").Get("storage").Call("getDirectory"))
	if err != nil {
		return js.Value{}, fmt.Errorf("opening the origin private file system: %w", err)
	}
	d, err := await(ctx, top.Call("getDirectoryHandle", o.name, map[string]any{"create": true}))
	if err != nil {
		return js.Value{}, fmt.Errorf("opening directory %q: %w", o.name, err)
	}
	o.root = d
	return d, nil
}

// dir returns the directory holding key's file; found is false when it
// does not exist and create is false.
func (o *opfs) dir(ctx context.Context, dirs []string, create bool) (d js.Value, found bool, err error) {
	if d, err = o.open(ctx); err != nil {
		return js.Value{}, false, err
	}
	for _, name := range dirs {
		v, missing, err := attempt(ctx, d.Call("getDirectoryHandle", name, map[string]any{"create": create}))
		if err != nil || missing {
			return js.Value{}, false, err
		}
		d = v
	}
	return d, true, nil
}

func (o *opfs) Get(ctx context.Context, key string) ([]byte, bool, error) {
	dirs, file := o.path(key)
	d, ok, err := o.dir(ctx, dirs, false)
	if err != nil || !ok {
		return nil, false, err
	}
	h, missing, err := attempt(ctx, d.Call("getFileHandle", file))
	if err != nil || missing {
		return nil, false, err
	}
	f, err := await(ctx, h.Call("getFile"))
	if err != nil {
		return nil, false, fmt.Errorf("opening %s: %w", key, err)
	}
	buf, err := await(ctx, f.Call("arrayBuffer"))
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", key, err)
	}
	u8 := js.Global().Get("Uint8Array").New(buf)
	b := make([]byte, u8.Get("length").Int())
	js.CopyBytesToGo(b, u8)
	return b, true, nil
}

func (o *opfs) Put(ctx context.Context, key string, b []byte) error {
	dirs, file := o.path(key)
	d, _, err := o.dir(ctx, dirs, true)
	if err != nil {
		return err
	}
	h, err := await(ctx, d.Call("getFileHandle", file, map[string]any{"create": true}))
	if err != nil {
		return fmt.Errorf("creating %s: %w", key, err)
	}
	w, err := await(ctx, h.Call("createWritable"))
	if err != nil {
		return fmt.Errorf("opening %s for writing: %w", key, err)
	}
	u8 := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(u8, b)
	if _, err := await(ctx, w.Call("write", u8)); err != nil {
		// Drop the swap file; the target keeps its old content.
		w.Call("abort")
		return fmt.Errorf("writing %s: %w", key, err)
	}
	if _, err := await(ctx, w.Call("close")); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}

func (o *opfs) Delete(ctx context.Context, key string) error {
	dirs, file := o.path(key)
	d, ok, err := o.dir(ctx, dirs, false)
	if err != nil || !ok {
		return err
	}
	if _, _, err := attempt(ctx, d.Call("removeEntry", file)); err != nil {
		return fmt.Errorf("removing %s: %w", key, err)
	}
	return nil
}

// attempt awaits p and reports a rejection with a NotFoundError as missing
// rather than as an error: a file or directory not there is an ordinary
// cache miss.
func attempt(ctx context.Context, p js.Value) (v js.Value, missing bool, err error) {
	// A rejection handler that returns a value fulfils the chained
	// promise, so the DOMException's name reaches Go intact.
	ok := js.FuncOf(func(_ js.Value, args []js.Value) any { return map[string]any{"value": arg(args)} })
	bad := js.FuncOf(func(_ js.Value, args []js.Value) any { return map[string]any{"error": arg(args)} })
	r, err := await(ctx, p.Call("then", ok, bad))
	if err != nil {
		// Cancelled: the handlers may still run, so they are not released.
		return js.Value{}, false, err
	}
	ok.Release()
	bad.Release()
	if e := r.Get("error"); !e.IsUndefined() {
		if e.Truthy() && e.Get("name").Type() == js.TypeString && e.Get("name").String() == "NotFoundError" {
			return js.Value{}, true, nil
		}
		return js.Value{}, false, jsError(e)
	}
	return r.Get("value"), false, nil
}
