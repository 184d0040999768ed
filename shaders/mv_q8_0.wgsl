// matvec units of q8_0 rows: one block (eight words of int8, one f16
// scale) each, for four rows at once so that every quad of x loaded
// serves four rows. Bytes are sign-extended by shifting the word left
// then arithmetically right (one vector shift each way); the scale
// multiplies the block's sum once.
fn units{{S}}(cols: u32) -> u32 { return cols / 32u; }

fn q8_dot{{S}}(v: u32, xv: vec4<f32>) -> f32 {
  let q = (vec4<i32>(bitcast<i32>(v)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
  return dot(vec4<f32>(q), xv);
}

fn half4{{S}}(h: vec4<u32>) -> vec4<f32> {
  let a = unpack2x16float(W[h.x >> 1u]);
  let b = unpack2x16float(W[h.y >> 1u]);
  let c = unpack2x16float(W[h.z >> 1u]);
  let d = unpack2x16float(W[h.w >> 1u]);
  let odd = (h & vec4<u32>(1u)) == vec4<u32>(1u);
  return select(vec4<f32>(a.x, b.x, c.x, d.x), vec4<f32>(a.y, b.y, c.y, d.y), odd);
}

fn unit_dot4{{S}}(m: Mat, r: vec4<u32>, k: u32, xb: u32) -> vec4<f32> {
  let bpr = m.cols / 32u;
  let b = r * bpr + vec4<u32>(k);
  let d = half4{{S}}(vec4<u32>(2u * m.base) + b);
  let qb = vec4<u32>(m.base + (2u * m.rows * bpr + 3u) / 4u) + 8u * b;
  let c = xb + 32u * k;
  var s = vec4<f32>(0.0);
  for (var i = 0u; i < 8u; i++) {
    let xv = x4(c + 4u * i);
    s += vec4<f32>(q8_dot{{S}}(W[qb.x + i], xv), q8_dot{{S}}(W[qb.y + i], xv),
      q8_dot{{S}}(W[qb.z + i], xv), q8_dot{{S}}(W[qb.w + i], xv));
  }
  return d * s;
}

// Ragged rows (the MoE kernels): rows of a block format are whole blocks
// (tensor.Quantize refuses other widths), so there is no tail and col4 is
// never called; it exists because the kernels are written for any format.
fn unit_cols{{S}}() -> u32 { return 32u; }
fn whole_units{{S}}(cols: u32) -> u32 { return units{{S}}(cols); }
fn col4{{S}}(m: Mat, r: vec4<u32>, c: u32) -> vec4<f32> { return vec4<f32>(0.0); }
