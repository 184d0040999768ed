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
// It must run on an ordinary goroutine: it awaits promises.
func (d *Device) request(f16 bool) error {
	gpu := js.Global().Get("navigator").Get("gpu")
	if !gpu.Truthy() {
		return fmt.Errorf("%w: navigator.gpu is missing", ErrNoAdapter)
	}
	ad, ok := jsx.Await(gpu.Call("requestAdapter", map[string]any{"powerPreference": "high-performance"}))
	if !ok || !ad.Truthy() {
		return fmt.Errorf("%w: requestAdapter returned no adapter", ErrNoAdapter)
	}
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
	dev, ok := jsx.Await(ad.Call("requestDevice", map[string]any{"label": "mode", "requiredLimits": want}))
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
