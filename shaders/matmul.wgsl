//#include common
//#include weights
//#include format
//#include dot

// matmul computes dst[t][row0+r] = W[r]·x[t] (+ bias) for the rows of one
// page of W. A workgroup owns one output row and up to TT tokens: each
// invocation dequantises 32-element chunks of the row into registers once
// and multiplies them with every token's x, so prefill (TT = 8) reads each
// weight once per 8 tokens while decode (TT = 1) keeps no extra registers.
// The partial sums are reduced in workgroup memory. The dot include is
// the f32 path (dot_f32) or, for f16 weights on devices with shader-f16,
// f16 arithmetic (dot_f16).

//#include matrix_io

const WG: u32 = 64u;
const TT: u32 = {{TT}}u;


var<workgroup> red: array<f32, 512>; // WG * max TT

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * p.nx;
  if (r >= p.rows) {
    return;
  }
  let t0 = wid.z * TT;
  let nt = min(TT, p.t - t0);
  let m = Mat(p.w_base, p.rows, p.cols);
  var acc: array<f32, TT>;
  let nch = (p.cols + 31u) / 32u;
  for (var ch = lid; ch < nch; ch += WG) {
    load_chunk(m, r, ch);
    let c0 = ch * 32u;
    let n = min(32u, p.cols - c0);
    for (var t = 0u; t < nt; t++) {
      acc[t] += chunk_dot(p.x_off + (t0 + t) * p.x_stride + c0, n);
    }
  }
  for (var t = 0u; t < TT; t++) {
    red[t * WG + lid] = acc[t];
  }
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st >>= 1u) {
    if (lid < st) {
      for (var t = 0u; t < TT; t++) {
        red[t * WG + lid] += red[t * WG + lid + st];
      }
    }
    workgroupBarrier();
  }
  if (lid < nt) {
    var v = red[lid * WG];
    if (p.has_bias != 0u) {
      v += bitcast<f32>(bias[p.bias_off + p.row0 + r]);
    }
    dst[p.dst_off + (t0 + lid) * p.dst_stride + p.row0 + r] = v;
  }
}
