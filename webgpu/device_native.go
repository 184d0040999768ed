//go:build !js

package webgpu

import (
	"fmt"
	"strings"

	"github.com/cogentcore/webgpu/wgpu"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

// request asks for a device with the adapter's own limits, so that large
// bindings and buffers are available, and shader-f16 when the adapter has
// it and f16 is wanted; with sg it finds out whether subgroups work
// (probeSubgroups). GetLimits leaves MaxPushConstantSize as garbage in
// cogentcore/webgpu v0.23.0, which makes the request fail at random: it is
// zeroed. No DeviceLostCallback is passed: v0.23.0 hands C a Go pointer to
// it, which the cgo pointer checks reject; a lost device shows instead as
// a failed map or work-done status, which wait and sync report.
func (d *Device) request(f16, sg bool) error {
	lim := d.adapter.GetLimits().Limits
	lim.MaxPushConstantSize = 0
	var feats []wgpu.FeatureName
	if f16 && d.adapter.HasFeature(wgpu.FeatureNameShaderF16) {
		feats = append(feats, wgpu.FeatureNameShaderF16)
	}
	dev, err := d.adapter.RequestDevice(&wgpu.DeviceDescriptor{
		Label:            "mode",
		RequiredFeatures: feats,
		RequiredLimits:   &wgpu.RequiredLimits{Limits: lim},
	})
	if err != nil {
		return fmt.Errorf("webgpu: requesting device: %w", err)
	}
	d.dev = dev
	ai := d.adapter.GetInfo()
	d.Adapter = adapterInfo(ai.AdapterType == wgpu.AdapterTypeCPU, ai.Name, ai.DriverDescription, ai.Architecture, ai.VendorName)
	if len(feats) > 0 {
		d.F16, d.F16Note = d.probeF16()
	} else if f16 {
		d.F16Note = "the adapter has no shader-f16"
	}
	d.SubgroupsNote = "turned off (Options.NoSubgroups or MODE_WEBGPU_SUBGROUPS=off)"
	if sg {
		d.Subgroups, d.SubgroupMin, d.SubgroupsNote = d.probeSubgroups()
	}
	return nil
}

// probeSubgroups compiles matvec's subgroup variant and reports whether
// it compiled. cogentcore/webgpu v0.23.0 cannot ask for subgroups: its
// wgpu-native (v22) names no subgroups feature (EnumerateFeatures lists
// none on lavapipe, whose Vulkan driver has subgroup operations) and its
// WGSL compiler knows neither `enable subgroups;` nor the subgroup
// builtins, so on it the probe fails and says so. A binding whose
// compiler accepts the kernel runs it; it reports no subgroup sizes, so
// the smallest WebGPU allows, 4, bounds the lanes per row.
func (d *Device) probeSubgroups() (bool, int, string) {
	const minSize = 4
	src, err := shaders.Source(shaders.MatVec, shaders.Spec{Format: tensor.F32, L: minSize, Subgroups: true})
	if err != nil {
		return false, 0, err.Error()
	}
	wgpu.SetLogLevel(wgpu.LogLevelOff)
	mod, err := d.dev.CreateShaderModule(&wgpu.ShaderModuleDescriptor{Label: "subgroups probe", WGSLDescriptor: &wgpu.ShaderModuleWGSLDescriptor{Code: src}})
	wgpu.SetLogLevel(wgpu.LogLevelWarn)
	if err != nil {
		return false, 0, "this wgpu-native exposes no subgroups feature and its WGSL compiler rejects subgroup operations: " + firstLine(err.Error())
	}
	mod.Release()
	return true, minSize, ""
}

// probeF16 compiles the f16-arithmetic matrix-vector kernel and reports
// whether it compiled. An adapter may offer shader-f16 while the WGSL
// compiler in wgpu-native cannot compile f16: naga before v25 (the one in
// cogentcore/webgpu v0.23.0's wgpu-native v22 among them) rejects
// `enable f16;` and the f16 type. Its error log is silenced meanwhile: a
// failed probe is an expected answer, not an error to print.
func (d *Device) probeF16() (bool, string) {
	src, err := shaders.Source(shaders.MatMul, shaders.Spec{Format: tensor.F16, TT: 1, F16: true})
	if err != nil {
		return false, err.Error()
	}
	wgpu.SetLogLevel(wgpu.LogLevelOff)
	mod, err := d.dev.CreateShaderModule(&wgpu.ShaderModuleDescriptor{Label: "f16 probe", WGSLDescriptor: &wgpu.ShaderModuleWGSLDescriptor{Code: src}})
	wgpu.SetLogLevel(wgpu.LogLevelWarn)
	if err != nil {
		return false, "the adapter has shader-f16 but wgpu-native's WGSL compiler cannot compile f16: " + firstLine(err.Error())
	}
	mod.Release()
	return true, ""
}

// firstLine is the line of a multi-line compiler error that names the
// error, or its first line.
func firstLine(s string) string {
	for line := range strings.Lines(s) {
		if t := strings.TrimSpace(line); strings.Contains(t, "parsing error") || strings.Contains(t, "validation error") {
			return t
		}
	}
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// endPass ends a compute pass and releases it, as wgpu-native requires
// before the encoder finishes.
func endPass(p *wgpu.ComputePassEncoder) error {
	err := p.End()
	p.Release()
	return err
}

// write copies data to b at byte offset off through the queue: the write
// is ordered before every submission made after it. len(data) and off
// must be multiples of 4.
func (d *Device) write(b *buffer, off uint64, data []byte) error {
	if err := checkWrite(b, off, len(data)); err != nil {
		return err
	}
	return d.queue.WriteBuffer(b.Buffer, off, data)
}

// catchJS is a no-op natively, where WebGPU calls return errors; under js
// it turns a JavaScript exception into *err.
func catchJS(string, *error) {}
