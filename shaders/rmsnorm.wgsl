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
  // in_place2: workgroups along x past groups1 normalise a second
  // tensor (x2 with weights w2; same rows and eps) in place: the q and k
  // norms of a layer in one dispatch.
  groups1: u32,
  group2: u32,
  x_off2: u32,
  x_stride2: u32,
  w_off2: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> w2: array<u32>;
@group(0) @binding(5) var<storage, read_write> x2: array<f32>;

var<workgroup> red: array<f32, WG>;

// norm is the kernel; in_place writes the result over x (dst unused), for
// RMSNorm(q, q): a buffer cannot be bound to two writable bindings.
fn norm(wid: vec3<u32>, lid: u32, in_place: bool) {
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
    let v = bitcast<f32>(w[p.w_off + i]) * (inv * x[xo + i]);
    if (in_place) {
      x[xo + i] = v;
    } else {
      dst[o + i] = v;
    }
  }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  norm(wid, lid, false);
}

@compute @workgroup_size(64)
fn in_place(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  norm(wid, lid, true);
}

// norm2 is norm in place over the second tensor of in_place2.
fn norm2(g: u32, r: u32, lid: u32) {
  let xo = p.x_off2 + r * p.x_stride2 + g * p.group2;
  var s = 0.0;
  for (var i = lid; i < p.group2; i += WG) {
    let v = x2[xo + i];
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
  let inv = 1.0 / sqrt(red[0] / f32(p.group2) + bitcast<f32>(p.eps));
  for (var i = lid; i < p.group2; i += WG) {
    x2[xo + i] = bitcast<f32>(w2[p.w_off2 + i]) * (inv * x2[xo + i]);
  }
}

@compute @workgroup_size(64)
fn in_place2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  if (wid.x < p.groups1) {
    norm(wid, lid, true);
  } else {
    norm2(wid.x - p.groups1, wid.y, lid);
  }
}
