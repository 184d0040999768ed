// w_chunk dequantises sub-block ch of row r of a q4_k matrix m:
// d·scale·nibble − dmin·min. The arrays (dm, scales, mins, qs) start at
// words 0, n, 3n and 5n past base for n super-blocks.
fn w_chunk(m: Mat, r: u32, ch: u32) -> array<f32, 32> {
  var o: array<f32, 32>;
  let n = m.rows * (m.cols / 256u);
  let g = r * (m.cols / 32u) + ch;
  let sb = g / 8u;
  let s = g % 8u;
  let dm = unpack2x16float(w[m.base + sb]);
  let ds = dm.x * f32(byte_at(m.base + n, 8u * sb + s));
  let ms = dm.y * f32(byte_at(m.base + 3u * n, 8u * sb + s));
  let qb = m.base + 5u * n + 32u * sb + 4u * s;
  for (var i = 0u; i < 4u; i++) {
    let v = w[qb + i];
    for (var k = 0u; k < 4u; k++) {
      let q = (v >> (8u * k)) & 0xffu;
      o[4u * i + k] = ds * f32(q & 15u) - ms;
      o[4u * i + k + 16u] = ds * f32(q >> 4u) - ms;
    }
  }
  return o;
}
