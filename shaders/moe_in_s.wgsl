// The MoE matrix kernels' input (moe_gu's x, moe_down's g) as a storage
// array of f32: x4 is four loads, since its offsets and strides need not
// be multiples of four; x1 is one value.
fn x4(c: u32) -> vec4<f32> {
  return vec4<f32>(IN[c], IN[c + 1u], IN[c + 2u], IN[c + 3u]);
}

fn x1(i: u32) -> f32 {
  return IN[i];
}
