//#include common
//#include weights
//#include mv

// matvec_multi is matvec for up to three matrices that multiply the same
// x (the q, k and v projections of a decode step) in one dispatch: the
// rows of w, w2 and w3 follow each other in the grid and each goes to its
// own output. A row's sum is the same arithmetic as matvec's main (same
// units, four rows per lane, lanes and lane order). Matrices with no rows are skipped; no
// bias, no residual.

struct P {
  rows0: u32,
  rows1: u32,
  rows2: u32,
  base0: u32,
  base1: u32,
  base2: u32,
  dst0: u32,
  dst1: u32,
  dst2: u32,
  cols: u32,
  x_off: u32,
  nx: u32,
  n_off: u32, // Spec.Norm: see matvec.wgsl
  eps: u32,
  h_off: u32, // unused: h is not bound (eight storage bindings at most)
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out0: array<f32>;
@group(0) @binding(4) var<storage, read> w2: array<u32>;
@group(0) @binding(5) var<storage, read> w3: array<u32>;
@group(0) @binding(6) var<storage, read_write> out1: array<f32>;
@group(0) @binding(7) var<storage, read_write> out2: array<f32>;

@group(0) @binding(8) var<storage, read> nw: array<u32>;
// h is declared for xn_on.wgsl's norm_write_h, which this kernel never
// calls: a backend fusing the norm in here keeps the norm's own dispatch
// aside for whoever reads h next.
@group(0) @binding(9) var<storage, read_write> h: array<f32>;

// x4 is x[c..c+4] for c a multiple of four (x_off is one; see matvec),
// through the RMSNorm with Spec.Norm.
//#include xnorm

const L: u32 = {{L}}u;
const RW: u32 = 64u / L;
const PER: u32 = 4u * RW; // rows per workgroup, as matvec's main

// lane_slot and lane_sum as matvec's.
//#include lanes

// main: the workgroups of each matrix follow each other, ceil(rows_i/PER)
// of them (shaders.MatVecMultiGroups), so a workgroup works on one matrix
// and its branch is uniform.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32{{SG_IN}}) {
  let me = lane_slot(lid{{SG_ARGS}});
  let lane = me % L;
  let g0 = (p.rows0 + PER - 1u) / PER;
  let g1 = (p.rows1 + PER - 1u) / PER;
  norm_begin(lid, p.x_off, p.cols);
  var wg = wid.x + wid.y * p.nx;
  var which = 0u;
  var rows = p.rows0;
  if (wg >= g0 + g1) {
    which = 2u;
    wg -= g0 + g1;
    rows = p.rows2;
  } else if (wg >= g0) {
    which = 1u;
    wg -= g0;
    rows = p.rows1;
  }
  let rv = vec4<u32>(wg * PER + me / L) + vec4<u32>(0u, RW, 2u * RW, 3u * RW);
  let rc = min(rv, vec4<u32>(max(rows, 1u) - 1u));
  var acc = vec4<f32>(0.0);
  if (rv.x < rows) {
    let n = units(p.cols) + (wid.z >> 31u); // see matvec.wgsl's store
    switch which {
      case 0u: {
        let m = Mat(p.base0, rows, p.cols);
        for (var k = lane; k < n; k += L) {
          acc += unit_dot4(m, rc, k, p.x_off);
        }
      }
      case 1u: {
        let m = Mat(p.base1, rows, p.cols);
        for (var k = lane; k < n; k += L) {
          acc += unit_dot42(m, rc, k, p.x_off);
        }
      }
      default: {
        let m = Mat(p.base2, rows, p.cols);
        for (var k = lane; k < n; k += L) {
          acc += unit_dot43(m, rc, k, p.x_off);
        }
      }
    }
  }
  acc = lane_sum(me, acc, 0u);
  if (lane != 0u) {
    return;
  }
  for (var j = 0u; j < 4u; j++) {
    let r = rv[j];
    if (r >= rows) {
      break;
    }
    switch which {
      case 0u: {
        out0[p.dst0 + r] = acc[j];
      }
      case 1u: {
        out1[p.dst1 + r] = acc[j];
      }
      default: {
        out2[p.dst2 + r] = acc[j];
      }
    }
  }
}
