// matvec units of mxfp4 rows: one block (four words of FP4 codes, one
// e8m0 scale byte) each, for four rows at once as the other formats. Word
// i of a block holds elements 8i..8i+7 in order, two per byte (low nibble
// first); the scale multiplies the block's sum once.
fn units{{S}}(cols: u32) -> u32 { return cols / 32u; }

// fp4x4{{S}} is the four FP4 (e2m1) codes in the low nibbles of c, exactly:
// codes 2..7 (e > 0) are (1 + m/2)·2^(e−1), whose f32 bits are
// (code + 252) << 22, code 1 is 0.5 and code 0 zero; bit 3 is the sign.
// Integer ops on a vector instead of exp2 and a branch per nibble.
fn fp4x4{{S}}(c: vec4<u32>) -> vec4<f32> {
  let m = c & vec4<u32>(7u);
  let small = select(vec4<u32>(0u), vec4<u32>(0x3f000000u), m == vec4<u32>(1u));
  let bits = select((m + vec4<u32>(252u)) << vec4<u32>(22u), small, m < vec4<u32>(2u));
  return bitcast<vec4<f32>>(bits | ((c & vec4<u32>(8u)) << vec4<u32>(28u)));
}

fn fp4_word{{S}}(v: u32, c: u32) -> f32 {
  let a = fp4x4{{S}}(vec4<u32>(v) >> vec4<u32>(0u, 4u, 8u, 12u));
  let b = fp4x4{{S}}(vec4<u32>(v) >> vec4<u32>(16u, 20u, 24u, 28u));
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
