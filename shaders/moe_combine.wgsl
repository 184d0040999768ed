// moe_combine adds the routed experts' outputs to dst (which holds the
// shared experts' sum): dst[t][j] += Σ_k weight_k · y[t·K + k][j], in rank
// order as the CPU backend sums, skipping empty slots and experts that
// are not resident (table width 0; see moe.wgsl). One invocation per
// (token, column); no barriers.

struct P {
  t: u32,
  k: u32,
  d: u32,
  routes_off: u32,
  dst_off: u32,
  dst_stride: u32,
  init: u32,    // start from 0, not dst (no shared experts)
  add_res: u32, // also add the result into res (the engine's residual Add)
  res_off: u32,
  res_stride: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read_write> routes: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
@group(0) @binding(5) var<storage, read_write> res: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  let t = gid.y;
  if (j >= p.d || t >= p.t) {
    return;
  }
  let o = p.dst_off + t * p.dst_stride + j;
  var acc = 0.0;
  if (p.init == 0u) {
    acc = dst[o];
  }
  for (var k = 0u; k < p.k; k++) {
    let slot = t * p.k + k;
    let e = routes[p.routes_off + 2u * slot];
    if (e != 0xffffffffu && table[8u * e + 6u] > 0u) {
      acc += bitcast<f32>(routes[p.routes_off + 2u * slot + 1u]) * y[slot * p.d + j];
    }
  }
  dst[o] = acc;
  if (p.add_res != 0u) {
    let ro = p.res_off + t * p.res_stride + j;
    res[ro] = res[ro] + acc;
  }
}
