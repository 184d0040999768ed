//#include common
//#include weights
//#include format

// Routed experts of one layer. The layer's resident experts live in one
// pooled weight buffer w: words [4e, 4e+4) are expert e's table entry
// (gate base, up base, down base, width; width 0 = not resident), the
// matrices follow. Experts may have different widths. routes holds K
// (expert, weight bits) pairs per token; expert 0xffffffff is an empty
// slot. moe_up computes h[slot][i] = silu(gate_i·x)·(up_i·x) for each
// (token, rank) slot; moe_down adds Σ_k weight_k · down_e·h[slot] to dst in
// rank order. Barriers sit only in control flow uniform across the
// workgroup (loops over p.k); slots and widths read from storage only
// gate the arithmetic.

struct P {
  t: u32,
  k: u32,
  d: u32,
  x_off: u32,
  x_stride: u32,
  routes_off: u32,
  maxw: u32,
  dst_off: u32,
  dst_stride: u32,
  nx: u32,
}

const WG: u32 = 64u;
const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> routes: array<u32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> h: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;

var<workgroup> red: array<f32, 128>;

fn width_of(e: u32) -> u32 {
  if (e == NONE) {
    return 0u;
  }
  return w[4u * e + 3u];
}

@compute @workgroup_size(64)
fn moe_up(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = wid.x + wid.y * p.nx;
  let slot = wid.z;
  let t = slot / p.k;
  let e = routes[p.routes_off + 2u * slot];
  let width = width_of(e);
  let live = i < width;
  var g = 0.0;
  var u = 0.0;
  if (live) {
    let gm = Mat(w[4u * e], width, p.d);
    let um = Mat(w[4u * e + 1u], width, p.d);
    let nch = (p.d + 31u) / 32u;
    for (var ch = lid; ch < nch; ch += WG) {
      var gv = w_chunk(gm, i, ch);
      var uv = w_chunk(um, i, ch);
      let c0 = ch * 32u;
      let n = min(32u, p.d - c0);
      let xb = p.x_off + t * p.x_stride + c0;
      for (var j = 0u; j < n; j++) {
        g += gv[j] * x[xb + j];
        u += uv[j] * x[xb + j];
      }
    }
  }
  red[lid] = g;
  red[WG + lid] = u;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st >>= 1u) {
    if (lid < st) {
      red[lid] += red[lid + st];
      red[WG + lid] += red[WG + lid + st];
    }
    workgroupBarrier();
  }
  if (lid == 0u && live) {
    let gs = red[0];
    h[slot * p.maxw + i] = (gs * sigmoid(gs)) * red[WG];
  }
}

@compute @workgroup_size(64)
fn moe_down(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let j = wid.x + wid.y * p.nx;
  let t = wid.z;
  let live = j < p.d;
  var acc = 0.0;
  if (live && lid == 0u) {
    acc = dst[p.dst_off + t * p.dst_stride + j];
  }
  for (var k = 0u; k < p.k; k++) {
    let slot = t * p.k + k;
    let e = routes[p.routes_off + 2u * slot];
    let width = width_of(e);
    var s = 0.0;
    if (live && width > 0u) {
      let dm = Mat(w[4u * e + 2u], p.d, width);
      let nch = (width + 31u) / 32u;
      for (var ch = lid; ch < nch; ch += WG) {
        var dv = w_chunk(dm, j, ch);
        let c0 = ch * 32u;
        let n = min(32u, width - c0);
        for (var c = 0u; c < n; c++) {
          s += dv[c] * h[slot * p.maxw + c0 + c];
        }
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
    if (lid == 0u && width > 0u) {
      acc += bitcast<f32>(routes[p.routes_off + 2u * slot + 1u]) * red[0];
    }
    workgroupBarrier();
  }
  if (live && lid == 0u) {
    dst[p.dst_off + t * p.dst_stride + j] = acc;
  }
}
