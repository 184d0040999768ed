//#include common
//#include weights
//#include mv

// router_route is a decode token's router product and route.wgsl in one
// workgroup: matvec.wgsl's main over the E rows of the router (tiles of
// 4·RW rows in turn, as head_argmax does, with the RMSNorm on the way in
// under Spec.Norm), the logits stored, then, behind a storage barrier,
// route.wgsl's selection by invocation 0 (route_pick.wgsl) over the
// logits just stored. The logits are main's bit for bit and the routes
// route.wgsl's over them. The backend uses it when the router fits one
// matvec workgroup, where nothing runs in parallel that did before.

struct P {
  rows: u32,
  cols: u32,
  x_off: u32,
  w_base: u32,
  n_off: u32,   // Spec.Norm: the norm's weight in nw, its eps, and h
  eps: u32,
  h_off: u32,
  // route.wgsl's fields; the logits are stored at logits_off.
  t: u32,
  logits_off: u32,
  logits_stride: u32,
  sigmoid: u32,
  has_bias: u32,
  bias_off: u32,
  norm: u32,
  route_scale: u32, // f32 bits
  routes_off: u32,
  groups: u32,
  topk_groups: u32,
  top2: u32,
}

const E: u32 = {{E}}u;
const K: u32 = {{K}}u;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<u32>;
@group(0) @binding(5) var<storage, read_write> routes: array<u32>;
// Spec.Norm: x is the raw row and the norm applied on the way in
// (xn_on.wgsl); otherwise unused.
@group(0) @binding(6) var<storage, read> nw: array<u32>;
@group(0) @binding(7) var<storage, read_write> h: array<f32>;

//#include xnorm

const L: u32 = {{L}}u;
const RW: u32 = 64u / L;

fn rows4(r0: u32) -> vec4<u32> {
  return vec4<u32>(r0) + vec4<u32>(0u, RW, 2u * RW, 3u * RW);
}

//#include lanes
//#include route_pick

// The loop bounds add wid.z >> 31 (always 0) as matvec.wgsl's do, so that
// lavapipe does not re-specialise the shader on every dispatch.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32{{SG_IN}}) {
  let me = lane_slot(lid{{SG_ARGS}});
  let lane = me % L;
  let m = Mat(p.w_base, p.rows, p.cols);
  let xb = p.x_off;
  norm_begin(lid, xb, p.cols);
  norm_write_h(true, lid, xb, p.cols);
  let tiles = (p.rows + 4u * RW - 1u) / (4u * RW) + (wid.z >> 31u);
  let n = units(p.cols) + (wid.z >> 31u);
  for (var tile = 0u; tile < tiles; tile++) {
    let rv = rows4(tile * 4u * RW + me / L);
    let rc = min(rv, vec4<u32>(p.rows - 1u));
    var a = vec4<f32>(0.0);
    for (var k = lane; k < n; k += L) {
      a += unit_dot4(m, rc, k, xb);
    }
    a = lane_sum(me, a, tile % 2u); // alternate halves: lane 0 may still read the last
    if (lane == 0u) {
      for (var c = 0u; c < 4u; c++) {
        if (rv[c] < p.rows) {
          logits[p.logits_off + rv[c]] = a[c];
        }
      }
    }
  }
  storageBarrier();
  if (lid == 0u) {
    route_token(0u);
  }
}
