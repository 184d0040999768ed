// gemm's f32 path: tiles of f32 in workgroup memory, products summed in
// f32 in column order. Staged rows are padded from 32 to 33 values so that
// the 8 token rows (or weight rows) a group of lanes reads at one column
// fall in different memory banks on GPUs.

const WS: u32 = 33u;
var<workgroup> ws: array<f32, 2112>; // TM * WS
var<workgroup> xs: array<f32, 1056>; // TN * WS

// stage puts chunk ch of the tile's rows and tokens in ws and xs, zero
// past the matrix's rows and columns and past the batch.
fn stage(m: Mat, r0: u32, t0: u32, ch: u32, lid: u32) {
  let c0 = ch * 32u;
  let n = min(32u, m.cols - c0);
  var wv: array<f32, 32>;
  if (r0 + lid < m.rows) {
    wv = w_chunk(m, r0 + lid, ch);
  }
  for (var j = 0u; j < 32u; j++) {
    ws[lid * WS + j] = wv[j];
  }
  let t = lid / 2u;
  let h = (lid % 2u) * 16u;
  let xb = p.x_off + (t0 + t) * p.x_stride + c0 + h;
  let live = t0 + t < p.t;
  for (var j = 0u; j < 16u; j++) {
    var v = 0.0;
    if (live && h + j < n) {
      v = x[xb + j];
    }
    xs[t * WS + h + j] = v;
  }
}

// tile_mac adds the staged chunk's products to the invocation's block.
fn tile_mac(acc: ptr<function, array<f32, 32>>, ty: u32, tx: u32) {
  for (var k = 0u; k < 32u; k++) {
    var xv: array<f32, 4>;
    for (var j = 0u; j < RN; j++) {
      xv[j] = xs[(tx + 8u * j) * WS + k];
    }
    for (var i = 0u; i < RM; i++) {
      let wv = ws[(ty + 8u * i) * WS + k];
      for (var j = 0u; j < RN; j++) {
        (*acc)[i * RN + j] += wv * xv[j];
      }
    }
  }
}
