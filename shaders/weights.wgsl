// Weight access. Weight tensors are bound as array<u32> named w and read in
// the storage layouts of runtime/tensor/quant.go: a matrix is (base word,
// rows, cols) and each block format's arrays follow at word offsets derived
// from its block count.

struct Mat {
  base: u32,
  rows: u32,
  cols: u32,
}

// half_at is the f16 value with half-index h of w, widened exactly to f32.
fn half_at(h: u32) -> f32 {
  let v = unpack2x16float(w[h >> 1u]);
  return select(v.x, v.y, (h & 1u) == 1u);
}

// byte_at is byte i of the array starting at word wb.
fn byte_at(wb: u32, i: u32) -> u32 {
  return (w[wb + (i >> 2u)] >> (8u * (i & 3u))) & 0xffu;
}

