//go:build js

package webgpu

import (
	"fmt"

	"github.com/cogentcore/webgpu/wgpu"
)

// request asks for a default device: under js, cogentcore/webgpu v0.23.0
// ignores RequiredLimits and panics on RequiredFeatures, so neither is
// passed and shader-f16 is never used (the kernels do not need it).
func (d *Device) request() error {
	dev, err := d.adapter.RequestDevice(nil)
	if err != nil {
		return fmt.Errorf("webgpu: requesting device: %w", err)
	}
	d.dev = dev
	return nil
}

func endPass(p *wgpu.ComputePassEncoder) error {
	p.End()
	p.Release()
	return nil
}
