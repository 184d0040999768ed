// Helpers every kernel may use.

// neg_inf is −∞. WGSL forbids a constant expression that evaluates to an
// infinity (Chrome's compiler enforces it), so the bits go through a var,
// which makes the bitcast a runtime value.
fn neg_inf() -> f32 {
  var bits = 0xff800000u;
  return bitcast<f32>(bits);
}

fn sigmoid(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}
