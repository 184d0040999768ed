// matvec units of f16 rows: eight weights (four words) each, widened to
// f32 exactly with unpack2x16float (no shader-f16 needed), for four rows
// at once so that every quad of x loaded serves four rows. cols is a
// multiple of 32, so every row starts on a word.
fn units{{S}}(cols: u32) -> u32 { return cols / 8u; }

fn f16_dot{{S}}(b: u32, xa: vec4<f32>, xc: vec4<f32>) -> f32 {
  return dot(vec4<f32>(unpack2x16float(W[b]), unpack2x16float(W[b + 1u])), xa) +
    dot(vec4<f32>(unpack2x16float(W[b + 2u]), unpack2x16float(W[b + 3u])), xc);
}

fn unit_dot4{{S}}(m: Mat, r: vec4<u32>, k: u32, xb: u32) -> vec4<f32> {
  let b = vec4<u32>(m.base + 4u * k) + (r * m.cols) / 2u;
  let c = xb + 8u * k;
  let xa = x4(c);
  let xc = x4(c + 4u);
  return vec4<f32>(f16_dot{{S}}(b.x, xa, xc), f16_dot{{S}}(b.y, xa, xc), f16_dot{{S}}(b.z, xa, xc), f16_dot{{S}}(b.w, xa, xc));
}

// Ragged rows (the MoE kernels): units need every row to start on a word
// (even cols); with odd cols every column goes through col4.
fn unit_cols{{S}}() -> u32 { return 8u; }
fn whole_units{{S}}(cols: u32) -> u32 { return select(0u, cols / 8u, cols % 2u == 0u); }

// col4{{S}} is column c of rows r, widened exactly.
fn col4{{S}}(m: Mat, r: vec4<u32>, c: u32) -> vec4<f32> {
  let h = vec4<u32>(2u * m.base + c) + r * m.cols;
  let a = unpack2x16float(W[h.x >> 1u]);
  let b = unpack2x16float(W[h.y >> 1u]);
  let d = unpack2x16float(W[h.z >> 1u]);
  let e = unpack2x16float(W[h.w >> 1u]);
  let odd = (h & vec4<u32>(1u)) == vec4<u32>(1u);
  return select(vec4<f32>(a.x, b.x, d.x, e.x), vec4<f32>(a.y, b.y, d.y, e.y), odd);
}
