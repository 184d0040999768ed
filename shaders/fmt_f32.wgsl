// w_chunk returns elements [32ch, 32ch+32) of row r of m, zero past cols.
fn w_chunk(m: Mat, r: u32, ch: u32) -> array<f32, 32> {
  var o: array<f32, 32>;
  let c0 = ch * 32u;
  let n = min(32u, m.cols - c0);
  let b = m.base + r * m.cols + c0;
  for (var j = 0u; j < n; j++) {
    o[j] = bitcast<f32>(w[b + j]);
  }
  return o;
}
