// The f16-arithmetic path for f16 weights, on devices with shader-f16 (the
// text is compiled with `enable f16;`). A chunk is 16 stored words as
// vec2<f16> pairs; chunk_dot rounds x to f16, multiplies and sums the 32
// products in f16 pairs, and returns the chunk's sum in f32. Only a
// chunk's products are ever added in f16 (two lanes of 16), so the f16
// rounding error does not grow with the row length; the sum over chunks is
// f32. A pair goes through unpack2x16float (exact) rather than
// bitcast<vec2<f16>>, which naga (v30) mistypes as f32 and rejects. Rows
// must have an even number of columns so that every row starts on a word
// (the backend keeps odd widths on the f32 path). The chunk is a private
// variable, as in dot_f32.

var<private> wv: array<vec2<f16>, 16>;

fn load_chunk(m: Mat, r: u32, ch: u32) {
  let c0 = ch * 32u;
  let n = min(32u, m.cols - c0);
  let wb = m.base + (r * m.cols + c0) / 2u;
  for (var j = 0u; j < 16u; j++) {
    var v = vec2<f16>(0.0h, 0.0h);
    if (j < n / 2u) {
      v = vec2<f16>(unpack2x16float(w[wb + j])); // exact
    }
    wv[j] = v;
  }
}

// chunk_dot is Σ_j wv[j]·x[xb+j] over the chunk's first n (even) columns.
fn chunk_dot(xb: u32, n: u32) -> f32 {
  var s = vec2<f16>(0.0h, 0.0h);
  for (var j = 0u; j < n / 2u; j++) {
    let xv = vec2<f16>(vec2<f32>(x[xb + 2u * j], x[xb + 2u * j + 1u]));
    s += wv[j] * xv;
  }
  return f32(s.x) + f32(s.y);
}
