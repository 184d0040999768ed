//go:build js

package webgpu

import (
	"fmt"
	"syscall/js"

	"github.com/cogentcore/webgpu/jsx"
	"github.com/cogentcore/webgpu/wgpu"
)

// request acquires the device through the browser's API directly rather
// than through cogentcore/webgpu v0.23.0, which under js ignores
// RequiredLimits (leaving 128 MiB bindings where SwiftShader offers 1 GiB)
// and panics on RequiredFeatures. shader-f16 is never requested (f16 is
// ignored): f16 weights take the f32 path, widened with unpack2x16float,
// which needs no extension.
//
// The binding hides the adapter's JS object, so a second adapter is
// requested here; it is the same physical adapter OpenDevice found.
// subgroups is requested when the adapter has it and sg is set; Chrome
// reports the adapter's smallest subgroup as info.subgroupMinSize (4,
// WebGPU's floor, is assumed where it does not).
//
// It must run on an ordinary goroutine: it awaits promises.
func (d *Device) request(_, sg bool) error {
	gpu := js.Global().Get("navigator").Get("gpu")
	if !gpu.Truthy() {
		return fmt.Errorf("%w: navigator.gpu is missing", ErrNoAdapter)
	}
	ad, ok := jsx.Await(gpu.Call("requestAdapter", map[string]any{"powerPreference": "high-performance"}))
	if !ok || !ad.Truthy() {
		return fmt.Errorf("%w: requestAdapter returned no adapter", ErrNoAdapter)
	}
	d.Adapter = jsAdapterInfo(ad)
	lim := ad.Get("limits")
	want := map[string]any{}
	for _, name := range []string{
		"maxStorageBufferBindingSize", "maxBufferSize", "maxComputeWorkgroupStorageSize",
		"maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX", "maxStorageBuffersPerShaderStage",
	} {
		if v := lim.Get(name); v.Type() == js.TypeNumber {
			want[name] = v.Float()
		}
	}
	var feats []any
	d.SubgroupsNote = "turned off (Options.NoSubgroups or MODE_WEBGPU_SUBGROUPS=off)"
	if sg {
		d.SubgroupsNote = "the adapter has no subgroups feature"
		if ad.Get("features").Call("has", "subgroups").Truthy() {
			feats = append(feats, "subgroups")
			d.Subgroups, d.SubgroupMin, d.SubgroupsNote = true, 4, ""
			if info := ad.Get("info"); info.Truthy() {
				if v := info.Get("subgroupMinSize"); v.Type() == js.TypeNumber && v.Int() >= 4 {
					d.SubgroupMin = v.Int()
				}
			}
		}
	}
	dev, ok := jsx.Await(ad.Call("requestDevice", map[string]any{"label": "mode", "requiredLimits": want, "requiredFeatures": feats}))
	if !ok || !dev.Truthy() {
		return fmt.Errorf("webgpu: requesting device: %s", describe(dev))
	}
	// Errors of a WebGPU call are not returned by the call: they arrive as
	// uncapturederror events. Results after one cannot be trusted, so the
	// device counts as lost and the next Sync or Read reports the error
	// instead of returning garbage.
	onErr := js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) > 0 {
			d.setLost("GPU error: " + describe(args[0].Get("error")))
		}
		return nil
	})
	dev.Call("addEventListener", "uncapturederror", onErr)
	onLost := js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := "lost"
		if len(args) > 0 {
			msg = describe(args[0])
		}
		d.setLost(msg)
		return nil
	})
	dev.Get("lost").Call("then", onLost)
	wd := wgpu.NewDevice(dev)
	d.dev = &wd
	return nil
}

// jsAdapterInfo reads GPUAdapter.info (Chrome 127 on), where Chrome
// names SwiftShader in architecture/description, and isFallbackAdapter,
// on the info (newer) or the adapter (older).
func jsAdapterInfo(ad js.Value) AdapterInfo {
	info := ad.Get("info")
	str := func(v js.Value, k string) string {
		if !v.Truthy() {
			return ""
		}
		if s := v.Get(k); s.Type() == js.TypeString {
			return s.String()
		}
		return ""
	}
	fallback := ad.Get("isFallbackAdapter").Truthy() || (info.Truthy() && info.Get("isFallbackAdapter").Truthy())
	return adapterInfo(fallback, str(info, "description"), str(info, "device"), str(info, "architecture"), str(info, "vendor"))
}

// describe is the message of a JS error-like value.
func describe(v js.Value) string {
	if v.Type() == js.TypeObject {
		if m := v.Get("message"); m.Type() == js.TypeString && m.String() != "" {
			return m.String()
		}
	}
	return js.Global().Get("String").Invoke(v).String()
}

func endPass(p *wgpu.ComputePassEncoder) error {
	p.End()
	p.Release()
	return nil
}

// write copies data to b at byte offset off: it fills a new buffer mapped
// at creation, copies that into b with a submission of its own, and
// destroys it (WebGPU keeps it alive until the copy has run). Queue order
// puts the copy before every submission made after it, as
// GPUQueue.writeBuffer would.
//
// cogentcore/webgpu's Queue.WriteBuffer is not used under js: it passes
// writeBuffer a Uint8ClampedArray over the wasm memory's ArrayBuffer, and
// when the Go heap grows memory between taking that ArrayBuffer and the
// call (syscall/js allocates while converting the arguments), the old
// ArrayBuffer is detached: the view is empty and writeBuffer throws
// "Number of bytes to write is too large", or constructing the view throws
// "Cannot perform Construct on a detached ArrayBuffer". Either exception
// was a Go panic that ended the worker mid-reply. Here the bytes go
// through js.CopyBytesToJS, which takes the memory's current buffer inside
// JavaScript, so no view of wasm memory outlives a single call.
func (d *Device) write(b *buffer, off uint64, data []byte) (err error) {
	if err := checkWrite(b, off, len(data)); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	defer catchJS("writing a buffer", &err)
	st, err := d.dev.CreateBufferInit(&wgpu.BufferInitDescriptor{Label: "upload", Contents: data, Usage: wgpu.BufferUsageCopySrc})
	if err != nil {
		return fmt.Errorf("webgpu: staging %d bytes: %w", len(data), err)
	}
	defer st.Destroy()
	enc, err := d.dev.CreateCommandEncoder(nil)
	if err != nil {
		return fmt.Errorf("webgpu: command encoder: %w", err)
	}
	if err := enc.CopyBufferToBuffer(st, 0, b.Buffer, off, uint64(len(data))); err != nil {
		return fmt.Errorf("webgpu: upload copy: %w", err)
	}
	cmd, err := enc.Finish(nil)
	if err != nil {
		return fmt.Errorf("webgpu: finishing upload: %w", err)
	}
	d.queue.Submit(cmd)
	return d.lostErr()
}

// catchJS turns a JavaScript exception thrown by a WebGPU call, which
// syscall/js raises as a panic, into *err, so that a failing call is an
// error the engine reports instead of the end of the worker.
func catchJS(what string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	je, ok := r.(js.Error)
	if !ok {
		panic(r)
	}
	*err = fmt.Errorf("webgpu: %s: %s", what, describe(je.Value))
}
