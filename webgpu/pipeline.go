package webgpu

import (
	"fmt"
	"sync"

	"github.com/cogentcore/webgpu/wgpu"
	"github.com/moderuntime/mode/shaders"
)

// pipeline is a compiled kernel with its explicit layouts (a nil layout
// throws under js, so they are always explicit).
type pipeline struct {
	pipe *wgpu.ComputePipeline
	bgl  *wgpu.BindGroupLayout
	pl   *wgpu.PipelineLayout
	mod  *wgpu.ShaderModule
}

// pipelineCache holds one pipeline per (kernel, specialisation).
type pipelineCache struct {
	mu sync.Mutex
	m  map[string]*pipeline
}

func (c *pipelineCache) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.m {
		p.pipe.Release()
		p.pl.Release()
		p.bgl.Release()
		p.mod.Release()
	}
	c.m = nil
}

// pipeline returns k specialised by s, compiling it on first use.
func (d *Device) pipeline(k shaders.Kernel, s shaders.Spec) (*pipeline, error) {
	key := k.Key(s)
	d.pipes.mu.Lock()
	defer d.pipes.mu.Unlock()
	if p, ok := d.pipes.m[key]; ok {
		return p, nil
	}
	src, err := shaders.Source(k, s)
	if err != nil {
		return nil, err
	}
	mod, err := d.dev.CreateShaderModule(&wgpu.ShaderModuleDescriptor{Label: key, WGSLDescriptor: &wgpu.ShaderModuleWGSLDescriptor{Code: src}})
	if err != nil {
		return nil, fmt.Errorf("webgpu: compiling %s: %w", key, err)
	}
	access := k.Access(s)
	entries := make([]wgpu.BindGroupLayoutEntry, len(access))
	for i, a := range access {
		t := wgpu.BufferBindingTypeStorage
		switch a {
		case shaders.Uniform:
			t = wgpu.BufferBindingTypeUniform
		case shaders.Read:
			t = wgpu.BufferBindingTypeReadOnlyStorage
		}
		entries[i] = wgpu.BindGroupLayoutEntry{Binding: uint32(i), Visibility: wgpu.ShaderStageCompute, Buffer: wgpu.BufferBindingLayout{Type: t}}
	}
	bgl, err := d.dev.CreateBindGroupLayout(&wgpu.BindGroupLayoutDescriptor{Label: key, Entries: entries})
	if err != nil {
		mod.Release()
		return nil, fmt.Errorf("webgpu: layout of %s: %w", key, err)
	}
	pl, err := d.dev.CreatePipelineLayout(&wgpu.PipelineLayoutDescriptor{Label: key, BindGroupLayouts: []*wgpu.BindGroupLayout{bgl}})
	if err != nil {
		bgl.Release()
		mod.Release()
		return nil, fmt.Errorf("webgpu: pipeline layout of %s: %w", key, err)
	}
	pipe, err := d.dev.CreateComputePipeline(&wgpu.ComputePipelineDescriptor{
		Layout:  pl,
		Compute: wgpu.ProgrammableStageDescriptor{Module: mod, EntryPoint: k.Entry},
	})
	if err != nil {
		pl.Release()
		bgl.Release()
		mod.Release()
		return nil, fmt.Errorf("webgpu: pipeline %s: %w", key, err)
	}
	p := &pipeline{pipe: pipe, bgl: bgl, pl: pl, mod: mod}
	d.pipes.m[key] = p
	return p, nil
}
