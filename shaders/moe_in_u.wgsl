// The MoE matrix kernels' input (moe_gu's x, moe_down's g) through a
// uniform binding of vec4s (Spec.XU: one lane per row on a CPU adapter,
// where every invocation of a workgroup loads the same quad and a uniform
// load at a uniform offset is one load, a storage load a loop over the
// SIMD lanes). The backend binds it only where the rows start at
// multiples of four, so a unit's quads are whole vec4s.
fn x4(c: u32) -> vec4<f32> {
  return IN[c >> 2u];
}

fn x1(i: u32) -> f32 {
  return IN[i >> 2u][i & 3u];
}
