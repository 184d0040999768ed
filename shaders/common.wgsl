// Helpers every kernel may use.

fn neg_inf() -> f32 {
  return bitcast<f32>(0xff800000u);
}

fn sigmoid(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}
