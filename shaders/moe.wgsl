//#include common
//#include weights
//#include format

// Routed experts of one layer. An expert's gate, up and down matrices lie
// wherever the backend put them: in a page of the expert pool shared by all
// layers, or in a weight buffer of their own. table holds 8 words per
// expert: gate key, gate base, up key, up base, down key, down base, width,
// 0 (width 0: not resident). A key is (buffer id << 3) | format code: one
// dispatch binds one buffer as w, is specialised to one format, and works
// only on the matrices whose key equals p.key, so a layer's experts may be
// spread over several bindings and formats (one dispatch per key). routes
// holds K (expert, weight bits) pairs per token; expert 0xffffffff is an
// empty slot.
//
// moe_gu computes g[slot][i] = gate_i·x and u[slot][i] = up_i·x for each
// (token, rank) slot; the backend then applies swiglu (g = silu(g)·u) and
// moe_down computes y[slot][j] = down_j·g[slot]; moe_combine.wgsl adds the
// slots to dst in rank order. A workgroup owns one (slot, row): whether
// this dispatch has work there is the same for all its invocations, and
// workgroupUniformLoad lets the compiler see that, so idle workgroups
// return before the reduction's barriers.

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

var<workgroup> red: array<f32, 128>;
var<workgroup> work: u32;

// slot_expert is the expert of a (token, rank) slot; slot_width is its
// width, 0 for an empty slot or an expert that is not resident.
fn slot_expert(slot: u32) -> u32 {
  return routes[p.routes_off + 2u * slot];
}

fn slot_width(e: u32) -> u32 {
  if (e == NONE) {
    return 0u;
  }
  return table[8u * e + 6u];
}

@compute @workgroup_size(64)
fn moe_gu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = wid.x + wid.y * p.nx;
  let slot = wid.z;
  let e = slot_expert(slot);
  let width = slot_width(e);
  if (lid == 0u) {
    var m = 0u;
    if (i < width) {
      m = select(0u, 1u, table[8u * e] == p.key) | select(0u, 2u, table[8u * e + 2u] == p.key);
    }
    work = m;
  }
  let mask = workgroupUniformLoad(&work);
  if (mask == 0u) {
    return;
  }
  let t = slot / p.k;
  let gm = Mat(table[8u * e + 1u], width, p.d);
  let um = Mat(table[8u * e + 3u], width, p.d);
  var gs = 0.0;
  var us = 0.0;
  let nch = (p.d + 31u) / 32u;
  for (var ch = lid; ch < nch; ch += WG) {
    let c0 = ch * 32u;
    let n = min(32u, p.d - c0);
    let xb = p.x_off + t * p.x_stride + c0;
    if ((mask & 1u) != 0u) {
      var gv = w_chunk(gm, i, ch);
      for (var j = 0u; j < n; j++) {
        gs += gv[j] * x[xb + j];
      }
    }
    if ((mask & 2u) != 0u) {
      var uv = w_chunk(um, i, ch);
      for (var j = 0u; j < n; j++) {
        us += uv[j] * x[xb + j];
      }
    }
  }
  red[lid] = gs;
  red[WG + lid] = us;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st >>= 1u) {
    if (lid < st) {
      red[lid] += red[lid + st];
      red[WG + lid] += red[WG + lid + st];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    if ((mask & 1u) != 0u) {
      g[slot * p.maxw + i] = red[0];
    }
    if ((mask & 2u) != 0u) {
      u[slot * p.maxw + i] = red[WG];
    }
  }
}

// moe_down: g holds silu(gate·x)·(up·x) per slot; writes y (bound as u,
// D values per slot).
@compute @workgroup_size(64)
fn moe_down(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let j = wid.x + wid.y * p.nx;
  let slot = wid.z;
  let e = slot_expert(slot);
  let width = slot_width(e);
  if (lid == 0u) {
    work = select(0u, 1u, j < p.d && width > 0u && table[8u * e + 4u] == p.key);
  }
  if (workgroupUniformLoad(&work) == 0u) {
    return;
  }
  let dm = Mat(table[8u * e + 5u], p.d, width);
  var s = 0.0;
  let nch = (width + 31u) / 32u;
  for (var ch = lid; ch < nch; ch += WG) {
    var dv = w_chunk(dm, j, ch);
    let c0 = ch * 32u;
    let n = min(32u, width - c0);
    for (var c = 0u; c < n; c++) {
      s += dv[c] * g[slot * p.maxw + c0 + c];
    }
  }
  red[lid] = s;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st >>= 1u) {
    if (lid < st) {
      red[lid] += red[lid + st];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    u[slot * p.d + j] = red[0];
  }
}
