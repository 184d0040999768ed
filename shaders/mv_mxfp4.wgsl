// matvec units of mxfp4 rows: one block (four words of FP4 codes, one
// e8m0 scale byte) each, for four rows at once as the other formats. Word
// i of a block holds elements 8i..8i+7 in order, two per byte (low nibble
// first); the scale multiplies the block's sum once.
fn units{{S}}(cols: u32) -> u32 { return cols / 32u; }

fn fp4{{S}}(c: u32) -> f32 {
  let e = (c >> 1u) & 3u;
  let m = f32(c & 1u);
  var v = m * 0.5;
  if (e > 0u) {
    v = (1.0 + m * 0.5) * exp2(f32(e) - 1.0);
  }
  return select(v, -v, (c & 8u) != 0u);
}

fn fp4_word{{S}}(v: u32, c: u32) -> f32 {
  let a = vec4<f32>(fp4{{S}}(v & 15u), fp4{{S}}((v >> 4u) & 15u), fp4{{S}}((v >> 8u) & 15u), fp4{{S}}((v >> 12u) & 15u));
  let b = vec4<f32>(fp4{{S}}((v >> 16u) & 15u), fp4{{S}}((v >> 20u) & 15u), fp4{{S}}((v >> 24u) & 15u), fp4{{S}}(v >> 28u));
  return dot(a, x4(c)) + dot(b, x4(c + 4u));
}

fn scale4{{S}}(m: Mat, b: vec4<u32>) -> vec4<f32> {
  let w = vec4<u32>(W[m.base + b.x / 4u], W[m.base + b.y / 4u], W[m.base + b.z / 4u], W[m.base + b.w / 4u]);
  return exp2(vec4<f32>((w >> (8u * (b & vec4<u32>(3u)))) & vec4<u32>(0xffu)) - vec4<f32>(127.0));
}

fn block_dot{{S}}(q: u32, c: u32) -> f32 {
  return fp4_word{{S}}(W[q], c) + fp4_word{{S}}(W[q + 1u], c + 8u) + fp4_word{{S}}(W[q + 2u], c + 16u) + fp4_word{{S}}(W[q + 3u], c + 24u);
}

// unit_dot4 is block k of rows r, for four rows at once.
fn unit_dot4{{S}}(m: Mat, r: vec4<u32>, k: u32, xb: u32) -> vec4<f32> {
  let bpr = m.cols / 32u;
  let b = r * bpr + vec4<u32>(k);
  let qb = vec4<u32>(m.base + (m.rows * bpr + 3u) / 4u) + 4u * b;
  let c = xb + 32u * k;
  let s = vec4<f32>(block_dot{{S}}(qb.x, c), block_dot{{S}}(qb.y, c), block_dot{{S}}(qb.z, c), block_dot{{S}}(qb.w, c));
  return scale4{{S}}(m, b) * s;
}

// Ragged rows (the MoE kernels): rows of a block format are whole blocks
// (tensor.Quantize refuses other widths), so there is no tail and col4 is
// never called; it exists because the kernels are written for any format.
fn unit_cols{{S}}() -> u32 { return 32u; }
fn whole_units{{S}}(cols: u32) -> u32 { return units{{S}}(cols); }
fn col4{{S}}(m: Mat, r: vec4<u32>, c: u32) -> vec4<f32> { return vec4<f32>(0.0); }
