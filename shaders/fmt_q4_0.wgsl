// w_chunk dequantises q4_0 block ch of row r of m: scale × (nibble − 8);
// byte j holds element j (low nibble) and j+16 (high nibble).
fn w_chunk(m: Mat, r: u32, ch: u32) -> array<f32, 32> {
  var o: array<f32, 32>;
  let nb = m.rows * (m.cols / 32u);
  let b = r * (m.cols / 32u) + ch;
  let d = half_at(2u * m.base + b);
  let qb = m.base + (2u * nb + 3u) / 4u + 4u * b;
  for (var i = 0u; i < 4u; i++) {
    let v = w[qb + i];
    for (var k = 0u; k < 4u; k++) {
      let q = (v >> (8u * k)) & 0xffu;
      o[4u * i + k] = d * (f32(q & 15u) - 8.0);
      o[4u * i + k + 16u] = d * (f32(q >> 4u) - 8.0);
    }
  }
  return o;
}
