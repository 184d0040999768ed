package webgpu

import (
	"encoding/binary"
	"fmt"

	"github.com/cogentcore/webgpu/wgpu"
	"github.com/moderuntime/mode/shaders"
)

// Run dispatches one kernel over grid workgroups with params in binding 0
// and bufs in bindings 1.., each uploaded from the host, and copies every
// read-write buffer back into its slice. It is for testing and measuring
// kernels on their own.
func (d *Device) Run(k shaders.Kernel, spec shaders.Spec, grid [3]uint32, params []uint32, bufs ...[]uint32) error {
	s, err := newStream(d)
	if err != nil {
		return err
	}
	defer s.release()
	args := make([]arg, len(bufs))
	for i, b := range bufs {
		g, err := d.upload(fmt.Sprintf("arg%d", i), b)
		if err != nil {
			return err
		}
		defer g.Release()
		args[i] = bufArg(g)
	}
	s.run(k, spec, grid, params, args...)
	for i, b := range bufs {
		if k.Access(spec)[i+1] != shaders.ReadWrite {
			continue
		}
		out, err := s.read(args[i].buf, 0, uint64(4*max(len(b), 1)))
		if err != nil {
			return fmt.Errorf("webgpu: run %s: %w", k.Key(spec), err)
		}
		for j := range b {
			b[j] = binary.LittleEndian.Uint32(out[4*j:])
		}
	}
	return s.sync()
}

// upload creates a storage buffer holding words (that may also be bound
// as a uniform: Spec.XU).
func (d *Device) upload(label string, words []uint32) (*buffer, error) {
	b, err := d.newBuffer(label, uint64(4*len(words)), wgpu.BufferUsageUniform|wgpu.BufferUsageStorage|wgpu.BufferUsageCopySrc|wgpu.BufferUsageCopyDst)
	if err != nil {
		return nil, err
	}
	if len(words) > 0 {
		if err := d.write(b, 0, wordBytes(words)); err != nil {
			b.Release()
			return nil, fmt.Errorf("webgpu: writing %s: %w", label, err)
		}
	}
	return b, nil
}

func wordBytes(w []uint32) []byte {
	out := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(out[4*i:], v)
	}
	return out
}
