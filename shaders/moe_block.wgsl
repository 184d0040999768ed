//#include common

// The steps of routed experts that moe.wgsl's matrix kernels do not do.
// Bindings and uniform are moe.wgsl's (see there for the table and the
// routes), so one MoEParams serves both files.
//
// moe_act applies each slot's expert's activation: g = act(g)·u over the
// expert's width (moe_gu without swiglu leaves gate·x in g, up·x in u).
//
// moe_norm is the input of block b ≥ 2 of deeper experts: for each slot
// whose expert has the block (width > 0 in the block's table), with x the
// layer's FFN input and g the sum of the expert's earlier blocks (y),
// u[slot] = w[e] ⊙ (h / sqrt(mean(h²) + eps)), h = x[token] + g[slot]; w
// holds the block's norm weights of every expert of the layer, D words
// each. rmsnorm.wgsl's arithmetic, one workgroup per slot.

struct P {
  t: u32,
  k: u32,
  d: u32,
  x_off: u32,
  x_stride: u32,
  routes_off: u32,
  maxw: u32,
  key: u32,
  nx: u32,
  swiglu: u32,
  dst_off: u32, // moe.wgsl's moe_down_sum fields: unused here
  dst_stride: u32,
  init: u32,
  add_res: u32,
  res_off: u32,
  res_stride: u32,
  x_slot: u32,
  accum: u32,
  eps: u32,
}

const WG: u32 = 64u;
const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> routes: array<u32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;
@group(0) @binding(5) var<storage, read_write> g: array<f32>;
@group(0) @binding(6) var<storage, read_write> u: array<f32>;

var<workgroup> red: array<f32, WG>;
var<workgroup> work: u32;

//#include moe_slots

@compute @workgroup_size(64)
fn moe_act(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let slot = gid.y;
  if (slot >= p.t * p.k) {
    return;
  }
  let e = slot_expert(slot);
  if (i >= slot_width(e)) {
    return;
  }
  let o = slot * p.maxw + i;
  g[o] = act(table[8u * e + 7u], g[o]) * u[o];
}

@compute @workgroup_size(64)
fn moe_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let slot = wid.z;
  let e = slot_expert(slot);
  if (lid == 0u) {
    work = select(0u, 1u, slot_width(e) > 0u);
  }
  if (workgroupUniformLoad(&work) == 0u) {
    return;
  }
  let xb = p.x_off + (slot / p.k) * p.x_stride;
  let yb = slot * p.d;
  var s = 0.0;
  for (var i = lid; i < p.d; i += WG) {
    let v = x[xb + i] + g[yb + i];
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
  let inv = 1.0 / sqrt(red[0] / f32(p.d) + bitcast<f32>(p.eps));
  for (var i = lid; i < p.d; i += WG) {
    let v = x[xb + i] + g[yb + i];
    u[yb + i] = bitcast<f32>(w[e * p.d + i]) * (inv * v);
  }
}
