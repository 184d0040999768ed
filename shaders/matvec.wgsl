//#include common
//#include weights
//#include mv

// matvec is the decode matrix-vector product, dst[t][row0+r] = W[r]·x[t]
// (+ bias), for rows of whole units (MatVecUnit). A workgroup of 64
// invocations owns 4·64/L rows: L lanes share a group of four rows (RW
// apart), reading them in the units its format defines (four f32, eight
// f16, one block of q8_0 or q4_0, two q4_k sub-blocks: see the mv_*
// includes), lane i taking units i, i+L, i+2L, ..., so neighbouring lanes
// read neighbouring words (coalesced on a GPU) and dequantise in registers
// with shifts and masks: no chunk array, whose dynamic indexing a CPU
// adapter spills to memory. Each quad of x a lane loads serves its four
// rows, and per-block terms (Σx for the q4 offsets) are computed once for
// them. The L partial sums meet in workgroup memory behind a single
// barrier and lane 0 adds them in lane order (lanes_wg.wgsl), or, with
// Spec.Subgroups, through subgroup shuffles with no barrier
// (lanes_sg.wgsl); with L = 1 (short rows) there is no reduction at all.
// L is specialised ({{L}}).
//
// Two entry points: main, which can also add its result into a residual
// stream (res[res_off + row0 + r] += value; the engine's Add after the
// output projection), and gate_up, which computes a SwiGLU hidden row
// silu(gate·x)·(up·x) from two matrices (w at w_base, w2 at w2_base) in
// one pass, so the gate and up products and the swiglu step are one
// dispatch. Specialised with Spec.Norm, both read x through an RMSNorm
// (xn_on.wgsl), so that the norm before a projection is no dispatch of
// its own.

// The parameters of matrix_io.wgsl plus matvec's own, and its bindings,
// with x read as vec4: the backend binds x only at offsets and strides
// that are multiples of four, and units start at multiples of four, so
// each quad of x is one load (one bounds check) instead of four.
struct P {
  rows: u32,
  cols: u32,
  t: u32,
  x_off: u32,
  x_stride: u32,
  dst_off: u32,
  dst_stride: u32,
  w_base: u32,
  has_bias: u32,
  bias_off: u32,
  row0: u32,
  nx: u32,
  add_res: u32,  // also add the result into res
  res_off: u32,
  res_stride: u32,
  w2_base: u32,  // gate_up: the up matrix in w2
  n_off: u32,    // Spec.Norm: the norm's weight in nw, its eps, and h
  eps: u32,
  h_off: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
// Spec.XU: x is a uniform array<vec4<f32>, XU> instead (one lane per row
// on a CPU adapter, where a storage load is a loop over the SIMD lanes
// even when every lane loads the same quad).
@group(0) @binding(2) {{X}};
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<u32>;

@group(0) @binding(5) var<storage, read_write> res: array<f32>;
@group(0) @binding(6) var<storage, read> w2: array<u32>;
// Spec.Norm: x is the raw row and the norm applied on the way in
// (xn_on.wgsl); otherwise unused.
@group(0) @binding(7) var<storage, read> nw: array<u32>;
@group(0) @binding(8) var<storage, read_write> h: array<f32>;

// x4 is x[c..c+4] for c a multiple of four.
//#include xnorm

const L: u32 = {{L}}u;
const RW: u32 = 64u / L; // row slots per workgroup; each lane takes four rows

// rows4 is the four rows of the lane whose first row is r0, RW apart, and
// the same clamped to the matrix (rows past the end read the last row's
// weights, which keeps the loops uniform; their sums are dropped).
fn rows4(r0: u32) -> vec4<u32> {
  return vec4<u32>(r0) + vec4<u32>(0u, RW, 2u * RW, 3u * RW);
}

// lane_slot and lane_sum: the lanes of a row group meet in workgroup
// memory, or through subgroup operations with Spec.Subgroups.
//#include lanes

// main: each lane takes four rows, RW apart, so that each quad of x it
// loads serves all four (a workgroup owns 4·RW rows).
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32{{SG_IN}}) {
  let me = lane_slot(lid{{SG_ARGS}});
  let lane = me % L;
  let rv = rows4((wid.x + wid.y * p.nx) * 4u * RW + me / L);
  let rc = min(rv, vec4<u32>(p.rows - 1u));
  let t = wid.z;
  let m = Mat(p.w_base, p.rows, p.cols);
  let xb = p.x_off + t * p.x_stride;
  norm_begin(lid, xb, p.cols);
  norm_write_h(wid.x + wid.y * p.nx == 0u, lid, xb, p.cols);
  var a = vec4<f32>(0.0);
  if (rv.x < p.rows) {
    let n = units(p.cols) + (wid.z >> 31u);
    for (var k = lane; k < n; k += L) {
      a += unit_dot4(m, rc, k, xb);
    }
  }
  a = lane_sum(me, a, 0u);
  if (lane != 0u) {
    return;
  }
  if (rv.x < p.rows) {
    store(t, rv.x, a.x);
  }
  if (rv.y < p.rows) {
    store(t, rv.y, a.y);
  }
  if (rv.z < p.rows) {
    store(t, rv.z, a.z);
  }
  if (rv.w < p.rows) {
    store(t, rv.w, a.w);
  }
}

// store writes row r's result (with its bias, and into res when add_res).
// Its conditions mix the uniform flags with r (r != 0xffffffff always
// holds) and the unit loops' bounds add wid.z >> 31 (always 0): lavapipe
// (Mesa 22.3) re-specialises a shader on every dispatch whose uniform
// values feed its branches or loop bounds ("inlinable uniforms"), which
// cost q4_k's matvec 6-9 ms of CPU per dispatch whatever its size (25x
// the arithmetic at 512²); a bound or condition that is not uniform-only
// is not inlined. The same in matvec_multi.wgsl and the MoE kernels.
fn store(t: u32, r: u32, v: f32) {
  var acc = v;
  if ((p.has_bias & select(0u, 1u, r != 0xffffffffu)) != 0u) {
    acc += bitcast<f32>(bias[p.bias_off + p.row0 + r]);
  }
  dst[p.dst_off + t * p.dst_stride + p.row0 + r] = acc;
  if ((p.add_res & select(0u, 1u, r != 0xffffffffu)) != 0u) {
    let o = p.res_off + t * p.res_stride + p.row0 + r;
    res[o] = res[o] + acc;
  }
}

fn swiglu_store(t: u32, r: u32, g: f32, u: f32) {
  if (r < p.rows) {
    dst[p.dst_off + t * p.dst_stride + p.row0 + r] = (g * sigmoid(g)) * u;
  }
}

@compute @workgroup_size(64)
fn gate_up(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32{{SG_IN}}) {
  let me = lane_slot(lid{{SG_ARGS}});
  let lane = me % L;
  let rv = rows4((wid.x + wid.y * p.nx) * 4u * RW + me / L);
  let rc = min(rv, vec4<u32>(p.rows - 1u));
  let t = wid.z;
  let xb = p.x_off + t * p.x_stride;
  norm_begin(lid, xb, p.cols);
  norm_write_h(wid.x + wid.y * p.nx == 0u, lid, xb, p.cols);
  var g = vec4<f32>(0.0);
  var u = vec4<f32>(0.0);
  if (rv.x < p.rows) {
    let gm = Mat(p.w_base, p.rows, p.cols);
    let um = Mat(p.w2_base, p.rows, p.cols);
    let n = units(p.cols) + (wid.z >> 31u);
    for (var k = lane; k < n; k += L) {
      g += unit_dot4(gm, rc, k, xb);
      u += unit_dot42(um, rc, k, xb);
    }
  }
  g = lane_sum(me, g, 0u);
  u = lane_sum(me, u, 1u);
  if (lane != 0u) {
    return;
  }
  swiglu_store(t, rv.x, g.x, u.x);
  swiglu_store(t, rv.y, g.y, u.y);
  swiglu_store(t, rv.z, g.z, u.z);
  swiglu_store(t, rv.w, g.w, u.w);
}

// head_argmax is main over every row in one workgroup, tiles of 4·RW rows
// in turn, followed by argmax.wgsl over the results: the index of the
// largest (the lowest among equals) goes to res[p.res_off] as an f32
// (exact below 2^24 rows), so a greedy decode's head and argmax are one
// dispatch (the backend uses it for heads of a few workgroups' rows; a
// larger head is worth its parallel workgroups). The rows' values, which
// it also stores, are main's bit for bit (the same unit loop and lane
// sums), and each invocation scans its rows in increasing index with
// argmax.wgsl's rule before the tree meets them with argmax.wgsl's
// comparison, so the index is argmax.wgsl's over main's output. No bias,
// no residual add (res holds the index).
var<workgroup> hv: array<f32, 64>;
var<workgroup> hix: array<u32, 64>;

@compute @workgroup_size(64)
fn head_argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32{{SG_IN}}) {
  let me = lane_slot(lid{{SG_ARGS}});
  let lane = me % L;
  let m = Mat(p.w_base, p.rows, p.cols);
  let xb = p.x_off;
  norm_begin(lid, xb, p.cols);
  norm_write_h(true, lid, xb, p.cols);
  var best = 0xffffffffu;
  var bval = 0.0;
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
        let r = rv[c];
        if (r < p.rows) {
          dst[p.dst_off + r] = a[c];
          if (best == 0xffffffffu || a[c] > bval) {
            best = r;
            bval = a[c];
          }
        }
      }
    }
  }
  hv[lid] = bval;
  hix[lid] = best;
  workgroupBarrier();
  for (var st = 32u; st > 0u; st >>= 1u) {
    if (lid < st) {
      let oi = hix[lid + st];
      let ov = hv[lid + st];
      if (oi != 0xffffffffu && (hix[lid] == 0xffffffffu || ov > hv[lid] || (ov == hv[lid] && oi < hix[lid]))) {
        hix[lid] = oi;
        hv[lid] = ov;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    res[p.res_off] = f32(hix[0]);
  }
}
