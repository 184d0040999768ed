// x as bound (Spec.Norm off): see xn_on.wgsl.
fn x4(c: u32) -> vec4<f32> {
  return x[c >> 2u];
}

fn norm_begin(lid: u32, base: u32, cols: u32) {}

fn norm_write_h(first: bool, lid: u32, base: u32, cols: u32) {}
