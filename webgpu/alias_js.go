//go:build js

package webgpu

import (
	"fmt"
	"syscall/js"
)

// aliasShim makes a GPUDevice accept dispatches that bind one buffer range
// to two storage bindings, as the in-place ops do: RMSNorm(q, q) for the
// q/k norms of OLMoE and Qwen3 (x and dst), and MoE's zeroing
// Accum(d, d). wgpu-native allows that; WebGPU in the browser rejects it
// ("writable storage buffer binding aliasing"). So under js the binding of
// the pair that the kernel only reads is bound to a scratch buffer
// instead, and every dispatch that uses such a bind group gets a copy of
// the range into the scratch right before it (the compute pass is split
// around the copy).
//
// Which binding is only read comes from the kernel's WGSL: a read_write
// storage variable that is never the target of an assignment. When both
// are assigned, or the kernel is unknown, the bind group is left alone and
// the browser reports the aliasing as an error: never a silent wrong
// result. The browser e2e tests compare the output with the native engine
// token for token.
//
// One scratch buffer per size serves every such bind group: each use is
// "copy into it, then dispatch", in command order.
const aliasShim = `(device) => {
	const codes = new WeakMap();   // shader module -> WGSL
	const bgls = new WeakMap();    // pipeline layout -> bind group layout
	const written = new WeakMap(); // bind group layout -> Set of assigned binding numbers
	const copies = new WeakMap();  // bind group -> [{src, offset, dst, size}]
	const scratch = new Map();     // size -> buffer

	const assigned = (code) => {
		const out = new Set();
		for (const m of code.matchAll(/@binding\((\d+)\)\s*var<storage,\s*read_write>\s*(\w+)/g)) {
			if (new RegExp("\\b" + m[2] + "\\[[^;=]*\\]\\s*[-+*/]?=(?!=)").test(code)) out.add(Number(m[1]));
		}
		return out;
	};
	const wrap = (name, after) => {
		const orig = device[name].bind(device);
		device[name] = (desc) => { const v = orig(desc); after(desc, v); return v; };
	};
	wrap("createShaderModule", (d, m) => codes.set(m, d.code));
	wrap("createPipelineLayout", (d, pl) => bgls.set(pl, d.bindGroupLayouts[0]));
	wrap("createComputePipeline", (d) => {
		const bgl = bgls.get(d.layout), code = codes.get(d.compute.module);
		if (bgl && code) written.set(bgl, assigned(code));
	});

	const scratchOf = (size) => {
		let b = scratch.get(size);
		if (!b) {
			b = device.createBuffer({label: "alias scratch", size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST});
			scratch.set(size, b);
		}
		return b;
	};
	const span = (e) => {
		const r = e.resource;
		if (!r || !r.buffer || e.binding === 0) return null;
		const start = r.offset ?? 0;
		return {buffer: r.buffer, start, end: start + (r.size ?? r.buffer.size - start)};
	};
	const createBindGroup = device.createBindGroup.bind(device);
	device.createBindGroup = (desc) => {
		const w = written.get(desc.layout);
		const entries = Array.from(desc.entries);
		const redirect = new Set();
		for (let i = 0; w && i < entries.length; i++) {
			for (let j = i + 1; j < entries.length; j++) {
				const a = span(entries[i]), b = span(entries[j]);
				if (!a || !b || a.buffer !== b.buffer || a.end <= b.start || b.end <= a.start) continue;
				const wi = w.has(entries[i].binding), wj = w.has(entries[j].binding);
				if (wi !== wj) redirect.add(wi ? j : i);
			}
		}
		if (!redirect.size) return createBindGroup(desc);
		const cs = [];
		for (const i of redirect) {
			const a = span(entries[i]), size = a.end - a.start, dst = scratchOf(size);
			cs.push({src: a.buffer, offset: a.start, dst, size});
			entries[i] = {binding: entries[i].binding, resource: {buffer: dst, offset: 0, size}};
		}
		const g = createBindGroup({...desc, entries});
		copies.set(g, cs);
		return g;
	};

	const createCommandEncoder = device.createCommandEncoder.bind(device);
	device.createCommandEncoder = (d) => {
		const enc = createCommandEncoder(d);
		const begin = enc.beginComputePass.bind(enc);
		enc.beginComputePass = (pd) => {
			let pass = begin(pd), pipe = null;
			const groups = [];
			return {
				setPipeline(p) { pipe = p; pass.setPipeline(p); },
				setBindGroup(i, g, offs) { groups[i] = [g, offs ?? []]; pass.setBindGroup(i, g, offs ?? []); },
				dispatchWorkgroups(x, y, z) {
					const cs = groups.flatMap((g) => (g && copies.get(g[0])) || []);
					if (cs.length) {
						pass.end();
						for (const c of cs) enc.copyBufferToBuffer(c.src, c.offset, c.dst, 0, c.size);
						pass = begin(pd);
						if (pipe) pass.setPipeline(pipe);
						groups.forEach((g, i) => g && pass.setBindGroup(i, g[0], g[1]));
					}
					pass.dispatchWorkgroups(x, y, z);
				},
				end() { pass.end(); },
			};
		};
		return enc;
	};
}`

// shimAliasing installs aliasShim on dev.
func shimAliasing(dev js.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("webgpu: installing the aliasing shim: %v", r)
		}
	}()
	// Function rather than eval: the shim sees only its argument.
	js.Global().Get("Function").New("return " + aliasShim).Invoke().Invoke(dev)
	return nil
}
