//#include common

// rmsnorm normalises group g of row r: dst = w ⊙ (x / sqrt(mean(x²) + eps)).
// One workgroup per (group, row); a group is the whole row for the layer
// norms and one head for per-head QK-norm. dst may alias x: every
// invocation reads its own elements before writing them.

struct P {
  rows: u32,
  cols: u32,
  group: u32,
  x_off: u32,
  x_stride: u32,
  dst_off: u32,
  dst_stride: u32,
  eps: u32,     // f32 bits
  w_off: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x;
  let r = wid.y;
  let xo = p.x_off + r * p.x_stride + g * p.group;
  let o = p.dst_off + r * p.dst_stride + g * p.group;
  var s = 0.0;
  for (var i = lid; i < p.group; i += WG) {
    let v = x[xo + i];
    s += v * v;
  }
  red[lid] = s;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st >>= 1u) {
    if (lid < st) {
      red[lid] += red[lid + st];
    }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(red[0] / f32(p.group) + bitcast<f32>(p.eps));
  for (var i = lid; i < p.group; i += WG) {
    dst[o + i] = bitcast<f32>(w[p.w_off + i]) * (inv * x[xo + i]);
  }
}
