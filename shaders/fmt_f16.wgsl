// w_chunk returns elements [32ch, 32ch+32) of row r of m, zero past cols.
// f16 is widened with unpack2x16float, which is exact and needs no
// shader-f16 extension.
fn w_chunk(m: Mat, r: u32, ch: u32) -> array<f32, 32> {
  var o: array<f32, 32>;
  let c0 = ch * 32u;
  let n = min(32u, m.cols - c0);
  let h = 2u * m.base + r * m.cols + c0;
  for (var j = 0u; j < n; j++) {
    o[j] = half_at(h + j);
  }
  return o;
}
