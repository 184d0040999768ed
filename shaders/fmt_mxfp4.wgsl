// e2m1 is the value of an FP4 (e2m1) code: sign bit 8 over the magnitudes
// 0, 0.5, 1, 1.5, 2, 3, 4, 6 (exponent bits 2-1, mantissa bit 0).
fn e2m1(c: u32) -> f32 {
  let e = (c >> 1u) & 3u;
  let m = f32(c & 1u);
  var v = m * 0.5;
  if (e > 0u) {
    v = (1.0 + m * 0.5) * exp2(f32(e) - 1.0);
  }
  return select(v, -v, (c & 8u) != 0u);
}

// e8m0 is the scale 2^(s − 127) of an e8m0 byte (0xFF, NaN, is refused at
// upload by tensor.Check).
fn e8m0(s: u32) -> f32 { return exp2(f32(s) - 127.0); }

// w_chunk dequantises mxfp4 block ch of row r of m: e2m1 × e8m0 scale;
// byte j holds element 2j (low nibble) and 2j+1 (high nibble), and the
// scales are one byte per block before the codes (runtime/tensor/mxfp4.go).
fn w_chunk(m: Mat, r: u32, ch: u32) -> array<f32, 32> {
  var o: array<f32, 32>;
  let nb = m.rows * (m.cols / 32u);
  let b = r * (m.cols / 32u) + ch;
  let d = e8m0((w[m.base + b / 4u] >> (8u * (b & 3u))) & 0xffu);
  let qb = m.base + (nb + 3u) / 4u + 4u * b;
  for (var i = 0u; i < 4u; i++) {
    let v = w[qb + i];
    for (var k = 0u; k < 4u; k++) {
      let q = (v >> (8u * k)) & 0xffu;
      o[8u * i + 2u * k] = d * e2m1(q & 15u);
      o[8u * i + 2u * k + 1u] = d * e2m1(q >> 4u);
    }
  }
  return o;
}
