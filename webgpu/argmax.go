package webgpu

import (
	"encoding/binary"
	"fmt"

	"github.com/cogentcore/webgpu/wgpu"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/shaders"
)

// Argmax returns the index of the largest value of x's first row (the
// lowest among equals), computed on the device: greedy decoding then reads
// back 4 bytes per token instead of the whole logits row
// (backend.Argmaxer).
func (b *Backend) Argmax(x backend.Buf) (int, error) {
	p := x.(*buf)
	out, err := b.s.pool.get("argmax", 4, wgpu.BufferUsageStorage|wgpu.BufferUsageCopySrc|wgpu.BufferUsageCopyDst)
	if err != nil {
		return 0, err
	}
	defer b.s.pool.put(out)
	b.s.run(shaders.Argmax, shaders.Spec{}, [3]uint32{1, 1, 1}, shaders.ArgmaxParams{N: u(p.cols), Off: u(p.off)}.Words(),
		bufArg(p.b), bufArg(out))
	data, err := b.s.read(out, 0, 4)
	if err != nil {
		return 0, err
	}
	id := int(binary.LittleEndian.Uint32(data))
	if id < 0 || id >= p.cols {
		return 0, fmt.Errorf("webgpu: argmax returned %d for %d values", id, p.cols)
	}
	return id, nil
}
