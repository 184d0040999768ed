package webgpu

import (
	"encoding/binary"
	"fmt"

	"github.com/cogentcore/webgpu/wgpu"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/sample"
	"github.com/moderuntime/mode/shaders"
)

// maxSampleTopK bounds the top-k the sampling kernel is specialised for:
// it runs one workgroup argmax round per kept token.
const maxSampleTopK = 64

// CanSample reports whether the sampling kernel reproduces sample.Sampler
// for p: a temperature, 1 ≤ top-k ≤ 64, and no repetition penalty (which
// needs the history on the host) (backend.DeviceSampler).
func (b *Backend) CanSample(p sample.Params) bool {
	return p.Temperature > 0 && p.TopK >= 1 && p.TopK <= maxSampleTopK &&
		(p.RepetitionPenalty == 0 || p.RepetitionPenalty == 1) && p.Validate() == nil
}

// SampleDevice draws one token from x's first row on the device and reads
// back only its id (backend.DeviceSampler).
func (b *Backend) SampleDevice(x backend.Buf, p sample.Params, draw uint32) (int, error) {
	if !b.CanSample(p) {
		return 0, fmt.Errorf("webgpu: sampling parameters %+v need the host", p)
	}
	l := x.(*buf)
	out, err := b.s.pool.get("sample", 4, wgpu.BufferUsageStorage|wgpu.BufferUsageCopySrc|wgpu.BufferUsageCopyDst)
	if err != nil {
		return 0, err
	}
	defer b.s.pool.put(out)
	sp := shaders.SampleParams{N: u(l.cols), Off: u(l.off), Seed: p.Seed, Draw: draw, Temp: p.Temperature, TopP: p.TopP, MinP: p.MinP}
	b.s.run(shaders.Sample, shaders.Spec{K: p.TopK}, [3]uint32{1, 1, 1}, sp.Words(), bufArg(l.b), bufArg(out))
	data, err := b.s.read(out, 0, 4)
	if err != nil {
		return 0, err
	}
	id := int(binary.LittleEndian.Uint32(data))
	if id < 0 || id >= l.cols {
		return 0, fmt.Errorf("webgpu: sampling returned %d for %d logits", id, l.cols)
	}
	return id, nil
}
