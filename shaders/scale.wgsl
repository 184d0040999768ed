// scale computes x *= s over n values: Granite's embedding, residual and
// logit multipliers (transformers' modeling_granitemoe.py multiplies the
// tensor by the config's float).

struct P {
  n: u32,
  off: u32,
  s: u32, // f32 bits
  nx: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.nx) * 256u + lid;
  if (i < p.n) {
    x[p.off + i] *= bitcast<f32>(p.s);
  }
}
