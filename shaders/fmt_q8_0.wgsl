// w_chunk dequantises q8_0 block ch of row r of m: scale × int8.
fn w_chunk(m: Mat, r: u32, ch: u32) -> array<f32, 32> {
  var o: array<f32, 32>;
  let nb = m.rows * (m.cols / 32u);
  let b = r * (m.cols / 32u) + ch;
  let d = half_at(2u * m.base + b);
  let qb = m.base + (2u * nb + 3u) / 4u + 8u * b;
  for (var i = 0u; i < 8u; i++) {
    let v = bitcast<i32>(w[qb + i]);
    for (var k = 0u; k < 4u; k++) {
      o[4u * i + k] = d * f32(extractBits(v, 8u * k, 8u));
    }
  }
  return o;
}
