// The f32 path of the matrix kernels, available everywhere: a chunk is
// the format's 32 weights widened to f32 (w_chunk) and chunk_dot sums
// their products with x in f32, in column order. The chunk lives in a
// private variable rather than passing between functions by value: naga
// indexes an array parameter only by constants, and copying it to a local
// made lavapipe's q8_0 and q4 matrix-vector products 2-3x slower.

var<private> wv: array<f32, 32>;

fn load_chunk(m: Mat, r: u32, ch: u32) {
  wv = w_chunk(m, r, ch);
}

// chunk_dot is Σ_j wv[j]·x[xb+j] over the chunk's first n columns.
fn chunk_dot(xb: u32, n: u32) -> f32 {
  var s = 0.0;
  for (var j = 0u; j < n; j++) {
    s += wv[j] * x[xb + j];
  }
  return s;
}
