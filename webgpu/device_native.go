//go:build !js

package webgpu

import (
	"fmt"

	"github.com/cogentcore/webgpu/wgpu"
)

// request asks for a device with the adapter's own limits, so that large
// bindings and buffers are available, and shader-f16 when the adapter has
// it. GetLimits leaves MaxPushConstantSize as garbage in
// cogentcore/webgpu v0.23.0, which makes the request fail at random: it is
// zeroed. No DeviceLostCallback is passed: v0.23.0 hands C a Go pointer to
// it, which the cgo pointer checks reject; a lost device shows instead as
// a failed map or work-done status, which wait and sync report.
func (d *Device) request() error {
	lim := d.adapter.GetLimits().Limits
	lim.MaxPushConstantSize = 0
	var feats []wgpu.FeatureName
	if d.adapter.HasFeature(wgpu.FeatureNameShaderF16) {
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
	d.F16 = len(feats) > 0
	return nil
}

// endPass ends a compute pass and releases it, as wgpu-native requires
// before the encoder finishes.
func endPass(p *wgpu.ComputePassEncoder) error {
	err := p.End()
	p.Release()
	return err
}
