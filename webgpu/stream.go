package webgpu

import (
	"encoding/binary"
	"fmt"

	"github.com/cogentcore/webgpu/wgpu"
	"github.com/moderuntime/mode/shaders"
)

// stream records dispatches and submits them together: one queue
// submission per flush, and the engine flushes once per forward step (at
// its Read of the logits), so a decoded token is one submission.
//
// Each dispatch's params, and small host data such as token ids or
// inverse frequencies, go to a host copy of the arena buffer at 256-byte
// aligned slots (the minimum binding-offset alignment). A flush writes the
// arena (Device.write) before submitting; queue order guarantees
// that the previous submission has consumed the old contents by then.
type stream struct {
	d     *Device
	pool  *pool
	arena *buffer
	data  []byte // host copy of the arena; len is the used part
	ops   []dispatch
	err   error // the first error; ops after it are dropped
	// pend are dispatches taken out of ops that go back in when their
	// output is bound again (see pendOp).
	pend []pendOp

	// groups caches bind groups by pipeline and bound ranges: a decode step
	// binds the same buffers at the same arena offsets every token, so in
	// steady state no bind group is created. Dropped whenever a storage
	// buffer is released (forgetGroups), so none outlives what it binds.
	groups map[string]*wgpu.BindGroup

	submits    int            // queue submissions so far
	dispatches int            // compute dispatches submitted so far
	byFile     map[string]int // dispatches recorded so far, by kernel file
	created    int            // bind groups created so far
	readBytes  int64          // bytes copied back to the host so far
}

type dispatch struct {
	p       *pipeline
	bg      *wgpu.BindGroup
	x, y, z uint32
}

// arg is one binding of a dispatch: a range of a device buffer, or words
// for the arena.
type arg struct {
	buf       *buffer
	off, size uint64 // size 0: the whole buffer from off
	host      []uint32
}

func bufArg(b *buffer) arg   { return arg{buf: b} }
func hostArg(w []uint32) arg { return arg{host: w} }

const (
	arenaSize  = 1 << 20
	arenaAlign = 256
)

func newStream(d *Device) (*stream, error) {
	a, err := d.newBuffer("arena", arenaSize, wgpu.BufferUsageUniform|wgpu.BufferUsageStorage|wgpu.BufferUsageCopyDst)
	if err != nil {
		return nil, err
	}
	return &stream{d: d, pool: newPool(d), arena: a, data: make([]byte, 0, arenaSize)}, nil
}

func (s *stream) fail(err error) {
	if s.err == nil && err != nil {
		s.err = err
	}
}

func slot(n int) int { return (n + arenaAlign - 1) &^ (arenaAlign - 1) }

// alloc places words in the arena and returns their byte offset.
func (s *stream) alloc(words []uint32) uint64 {
	off := len(s.data)
	s.data = s.data[:off+slot(4*len(words))]
	for i, w := range words {
		binary.LittleEndian.PutUint32(s.data[off+4*i:], w)
	}
	clear(s.data[off+4*len(words):])
	return uint64(off)
}

// run records one dispatch of k over grid workgroups; params fill binding
// 0 and args the others in order.
func (s *stream) run(k shaders.Kernel, spec shaders.Spec, grid [3]uint32, params []uint32, args ...arg) {
	if s.err != nil {
		return
	}
	if len(s.pend) > 0 {
		for _, a := range args {
			if a.buf != nil && s.pending(a.buf) {
				s.materialize(a.buf)
			}
		}
	}
	if len(args)+1 != len(k.Bindings) {
		s.fail(fmt.Errorf("webgpu: %s: %d bindings, want %d", k.Key(spec), len(args)+1, len(k.Bindings)))
		return
	}
	need := slot(4 * len(params))
	for _, a := range args {
		if a.buf == nil {
			need += slot(4 * max(len(a.host), 1))
		}
	}
	if len(s.data)+need > arenaSize {
		if need > arenaSize {
			s.fail(fmt.Errorf("webgpu: %s: %d bytes of host data exceed the arena", k.Key(spec), need))
			return
		}
		s.fail(s.flush(nil))
		if s.err != nil {
			return
		}
	}
	p, err := s.d.pipeline(k, spec)
	if err != nil {
		s.fail(err)
		return
	}
	entries := make([]wgpu.BindGroupEntry, 0, len(k.Bindings))
	po := s.alloc(params)
	entries = append(entries, wgpu.BindGroupEntry{Binding: 0, Buffer: s.arena.Buffer, Offset: po, Size: arenaAlign})
	for i, a := range args {
		var e wgpu.BindGroupEntry
		if a.buf == nil {
			host := a.host
			if len(host) == 0 {
				host = []uint32{0}
			}
			e = wgpu.BindGroupEntry{Buffer: s.arena.Buffer, Offset: s.alloc(host), Size: uint64(4 * len(host))}
		} else {
			e = wgpu.BindGroupEntry{Buffer: a.buf.Buffer, Offset: a.off, Size: a.size}
			if e.Size == 0 {
				e.Size = a.buf.size - a.off
			}
		}
		e.Binding = uint32(i + 1)
		entries = append(entries, e)
	}
	key := groupKey(p, entries)
	bg := s.groups[key]
	if bg == nil {
		var err error
		bg, err = s.d.dev.CreateBindGroup(&wgpu.BindGroupDescriptor{Layout: p.bgl, Entries: entries})
		if err != nil {
			s.fail(fmt.Errorf("webgpu: binding %s: %w", k.Key(spec), err))
			return
		}
		if s.groups == nil {
			s.groups = map[string]*wgpu.BindGroup{}
		}
		s.groups[key] = bg
		s.created++
	}
	s.ops = append(s.ops, dispatch{p: p, bg: bg, x: max(grid[0], 1), y: max(grid[1], 1), z: max(grid[2], 1)})
	if s.byFile == nil {
		s.byFile = map[string]int{}
	}
	s.byFile[k.File]++
}

// flush submits the recorded dispatches followed by whatever copy adds
// (readback copies).
func (s *stream) flush(copy func(*wgpu.CommandEncoder) error) (err error) {
	s.materialize(nil)
	if len(s.ops) == 0 && copy == nil {
		return nil
	}
	defer catchJS("submitting", &err)
	defer func() {
		s.ops, s.data = s.ops[:0], s.data[:0]
		if len(s.groups) > maxGroups {
			s.releaseGroups() // a workload that never repeats: keep memory bounded
		}
	}()
	enc, err := s.d.dev.CreateCommandEncoder(nil)
	if err != nil {
		return fmt.Errorf("webgpu: command encoder: %w", err)
	}
	defer enc.Release()
	if len(s.ops) > 0 {
		pass := enc.BeginComputePass(nil)
		for _, o := range s.ops {
			pass.SetPipeline(o.p.pipe)
			pass.SetBindGroup(0, o.bg, nil)
			pass.DispatchWorkgroups(o.x, o.y, o.z)
		}
		if err := endPass(pass); err != nil {
			return fmt.Errorf("webgpu: compute pass: %w", err)
		}
	}
	if copy != nil {
		if err := copy(enc); err != nil {
			return err
		}
	}
	cmd, err := enc.Finish(nil)
	if err != nil {
		return fmt.Errorf("webgpu: finishing commands: %w", err)
	}
	defer cmd.Release()
	if len(s.data) > 0 {
		if err := s.d.write(s.arena, 0, s.data); err != nil {
			return fmt.Errorf("webgpu: writing params: %w", err)
		}
	}
	s.d.queue.Submit(cmd)
	s.submits++
	s.dispatches += len(s.ops)
	return s.d.lostErr()
}

// read copies size bytes at off of b to the host, submitting everything
// recorded before it.
func (s *stream) read(b *buffer, off, size uint64) (out []byte, err error) {
	if s.err != nil {
		return nil, s.err
	}
	defer func() {
		if err != nil {
			s.fail(err)
		}
	}()
	defer catchJS("reading back", &err) // runs first: recover works only in the deferred call itself
	st, err := s.pool.get("staging", size, wgpu.BufferUsageMapRead|wgpu.BufferUsageCopyDst)
	if err != nil {
		return nil, err
	}
	defer s.pool.put(st)
	s.readBytes += int64(size)
	err = s.flush(func(enc *wgpu.CommandEncoder) error {
		if err := enc.CopyBufferToBuffer(b.Buffer, off, st.Buffer, 0, size); err != nil {
			return fmt.Errorf("webgpu: readback copy: %w", err)
		}
		return nil
	})
	if err != nil {
		s.fail(err)
		return nil, err
	}
	var status wgpu.BufferMapAsyncStatus
	mapped := false
	if err := st.MapAsync(wgpu.MapModeRead, 0, st.size, func(st wgpu.BufferMapAsyncStatus) {
		status, mapped = st, true
	}); err != nil {
		s.fail(fmt.Errorf("webgpu: mapping readback: %w", err))
		return nil, s.err
	}
	if err := s.d.wait("readback", func() bool { return mapped }); err != nil {
		s.fail(err)
		return nil, err
	}
	if status != wgpu.BufferMapAsyncStatusSuccess {
		s.fail(fmt.Errorf("webgpu: mapping readback: %v", status))
		return nil, s.err
	}
	out = make([]byte, size)
	copy(out, st.GetMappedRange(0, uint(size))) // the mapping ends at Unmap
	st.Unmap()
	return out, nil
}

// sync submits what is recorded and waits for the queue to finish it.
func (s *stream) sync() error {
	if s.err != nil {
		return s.err
	}
	if err := s.flush(nil); err != nil {
		s.fail(err)
		return err
	}
	done := false
	s.d.queue.OnSubmittedWorkDone(func(st wgpu.QueueWorkDoneStatus) {
		if st == wgpu.QueueWorkDoneStatusDeviceLost {
			s.d.setLost("queue work-done status")
		}
		done = true
	})
	if err := s.d.wait("sync", func() bool { return done }); err != nil {
		s.fail(err)
	}
	return s.err
}

// maxGroups bounds the bind-group cache; decode of one model needs a few
// hundred.
const maxGroups = 4096

// groupKey identifies a bind group by its pipeline and every bound range.
func groupKey(p *pipeline, entries []wgpu.BindGroupEntry) string {
	b := make([]byte, 0, 16+32*len(entries))
	b = fmt.Appendf(b, "%p", p)
	for _, e := range entries {
		b = fmt.Appendf(b, "|%d:%p:%d:%d", e.Binding, e.Buffer, e.Offset, e.Size)
	}
	return string(b)
}

// releaseGroups drops every cached bind group. Recorded dispatches may
// still use them, so those are submitted first.
func (s *stream) releaseGroups() {
	if len(s.ops) > 0 {
		s.fail(s.flush(nil))
	}
	for _, g := range s.groups {
		g.Release()
	}
	clear(s.groups)
}

// forgetGroups is called before a storage buffer is released: a cached
// bind group must never refer to a released buffer (its handle could be
// reused by a new one).
func (s *stream) forgetGroups() { s.releaseGroups() }

func (s *stream) release() {
	s.releaseGroups()
	s.ops = nil
	s.pool.release()
	s.arena.Release()
}
