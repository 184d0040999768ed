// pack_f16 stores n f32 values (n even) as f16 pairs packed in u32 words:
// the f16 KV-cache store. src_off counts f32 values, dst_off f16 values
// (both even), so word i of the run is dst[dst_off/2 + i]. pack2x16float
// is core WGSL, so this needs no shader-f16 feature.

struct P {
  n: u32,
  src_off: u32,
  dst_off: u32,
  nx: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.nx) * 256u + lid;
  if (i < p.n / 2u) {
    let s = p.src_off + 2u * i;
    dst[p.dst_off / 2u + i] = pack2x16float(vec2<f32>(src[s], src[s + 1u]));
  }
}
