// matvec units of q4_0 rows: one block (four words of nibbles, one f16
// scale) each, for four rows at once so that every quad of x loaded
// serves four rows. Word i of a block holds elements 4i..4i+3 in its low
// nibbles and 4i+16..4i+19 in its high ones: one vector shift and one
// mask each. The −8 offset (through Σx, shared by the rows) and the scale
// apply once per block.
fn units{{S}}(cols: u32) -> u32 { return cols / 32u; }

// q4_dot{{S}} is lo·xl + hi·xh for the nibbles of word v.
fn q4_dot{{S}}(v: u32, xl: vec4<f32>, xh: vec4<f32>) -> f32 {
  let lo = vec4<f32>((vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(15u));
  let hi = vec4<f32>((vec4<u32>(v) >> vec4<u32>(4u, 12u, 20u, 28u)) & vec4<u32>(15u));
  return dot(lo, xl) + dot(hi, xh);
}

// half4{{S}} is the f16 values at half-indices h, widened exactly.
fn half4{{S}}(h: vec4<u32>) -> vec4<f32> {
  let a = unpack2x16float(W[h.x >> 1u]);
  let b = unpack2x16float(W[h.y >> 1u]);
  let c = unpack2x16float(W[h.z >> 1u]);
  let d = unpack2x16float(W[h.w >> 1u]);
  let odd = (h & vec4<u32>(1u)) == vec4<u32>(1u);
  return select(vec4<f32>(a.x, b.x, c.x, d.x), vec4<f32>(a.y, b.y, c.y, d.y), odd);
}

// unit_dot4{{S}} is unit k of rows r (four row indices) dotted with x.
fn unit_dot4{{S}}(m: Mat, r: vec4<u32>, k: u32, xb: u32) -> vec4<f32> {
  let bpr = m.cols / 32u;
  let b = r * bpr + vec4<u32>(k);
  let d = half4{{S}}(vec4<u32>(2u * m.base) + b);
  let qb = vec4<u32>(m.base + (2u * m.rows * bpr + 3u) / 4u) + 4u * b;
  let c = xb + 32u * k;
  var s = vec4<f32>(0.0);
  var xs = vec4<f32>(0.0);
  for (var i = 0u; i < 4u; i++) {
    let xl = x4(c + 4u * i);
    let xh = x4(c + 16u + 4u * i);
    xs += xl + xh;
    s += vec4<f32>(q4_dot{{S}}(W[qb.x + i], xl, xh), q4_dot{{S}}(W[qb.y + i], xl, xh),
      q4_dot{{S}}(W[qb.z + i], xl, xh), q4_dot{{S}}(W[qb.w + i], xl, xh));
  }
  return d * (s - vec4<f32>(8.0 * dot(xs, vec4<f32>(1.0))));
}

// Ragged rows (the MoE kernels): rows of a block format are whole blocks
// (tensor.Quantize refuses other widths), so there is no tail and col4 is
// never called; it exists because the kernels are written for any format.
fn unit_cols{{S}}() -> u32 { return 32u; }
fn whole_units{{S}}(cols: u32) -> u32 { return units{{S}}(cols); }
fn col4{{S}}(m: Mat, r: vec4<u32>, c: u32) -> vec4<f32> { return vec4<f32>(0.0); }
