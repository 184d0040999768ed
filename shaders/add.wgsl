// add computes dst += x over n values (the residual connection).

struct P {
  n: u32,
  dst_off: u32,
  x_off: u32,
  nx: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.nx) * 256u + lid;
  if (i < p.n) {
    dst[p.dst_off + i] += x[p.x_off + i];
  }
}
