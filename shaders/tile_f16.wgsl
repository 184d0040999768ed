// gemm's f16-arithmetic path for f16 weights (shader-f16): tiles of
// vec2<f16> pairs in workgroup memory (the stored pairs, unpacked as in
// dot_f16; x rounded to f16 once when staged), each chunk's 32 products
// summed in f16 pairs, the chunk sums added in f32 — the numerics of
// dot_f16, so the same twin describes both. Rows must have an even number of columns.
// Staged rows are padded from 16 to 17 pairs, as in tile_f32.

const WS: u32 = 17u;
var<workgroup> ws: array<vec2<f16>, 1088>; // TM * WS
var<workgroup> xs: array<vec2<f16>, 544>;  // TN * WS

fn stage(m: Mat, r0: u32, t0: u32, ch: u32, lid: u32) {
  let c0 = ch * 32u;
  let n = min(32u, m.cols - c0);
  var wv: array<vec2<f16>, 16>;
  if (r0 + lid < m.rows) {
    let wb = m.base + ((r0 + lid) * m.cols + c0) / 2u;
    for (var j = 0u; j < n / 2u; j++) {
      wv[j] = vec2<f16>(unpack2x16float(w[wb + j])); // exact
    }
  }
  for (var j = 0u; j < 16u; j++) {
    ws[lid * WS + j] = wv[j];
  }
  let t = lid / 2u;
  let h = (lid % 2u) * 8u;
  let xb = p.x_off + (t0 + t) * p.x_stride + c0;
  let live = t0 + t < p.t;
  for (var j = 0u; j < 8u; j++) {
    let c = 2u * (h + j);
    var v = vec2<f16>(0.0h, 0.0h);
    if (live && c < n) {
      v = vec2<f16>(vec2<f32>(x[xb + c], x[xb + c + 1u]));
    }
    xs[t * WS + h + j] = v;
  }
}

fn tile_mac(acc: ptr<function, array<f32, 32>>, ty: u32, tx: u32) {
  var s: array<vec2<f16>, 32>;
  for (var k = 0u; k < 16u; k++) {
    var xv: array<vec2<f16>, 4>;
    for (var j = 0u; j < RN; j++) {
      xv[j] = xs[(tx + 8u * j) * WS + k];
    }
    for (var i = 0u; i < RM; i++) {
      let wv = ws[(ty + 8u * i) * WS + k];
      for (var j = 0u; j < RN; j++) {
        s[i * RN + j] += wv * xv[j];
      }
    }
  }
  for (var q = 0u; q < 32u; q++) {
    (*acc)[q] += f32(s[q].x) + f32(s[q].y);
  }
}
