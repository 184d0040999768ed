// matvec units of f32 rows: four weights (four words) each, for four rows
// at once so that every quad of x loaded serves four rows.
fn units{{S}}(cols: u32) -> u32 { return cols / 4u; }

fn f32_row{{S}}(b: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(W[b], W[b + 1u], W[b + 2u], W[b + 3u]));
}

fn unit_dot4{{S}}(m: Mat, r: vec4<u32>, k: u32, xb: u32) -> vec4<f32> {
  let b = vec4<u32>(m.base + 4u * k) + r * m.cols;
  let xv = x4(xb + 4u * k);
  return vec4<f32>(dot(f32_row{{S}}(b.x), xv), dot(f32_row{{S}}(b.y), xv), dot(f32_row{{S}}(b.z), xv), dot(f32_row{{S}}(b.w), xv));
}

// Ragged rows (the MoE kernels): whole units of any row (rows start on a
// word whatever cols is), then col4 for the last cols % 4 columns.
fn unit_cols{{S}}() -> u32 { return 4u; }
fn whole_units{{S}}(cols: u32) -> u32 { return cols / 4u; }

// col4{{S}} is column c of rows r.
fn col4{{S}}(m: Mat, r: vec4<u32>, c: u32) -> vec4<f32> {
  let i = vec4<u32>(m.base + c) + r * m.cols;
  return bitcast<vec4<f32>>(vec4<u32>(W[i.x], W[i.y], W[i.z], W[i.w]));
}
