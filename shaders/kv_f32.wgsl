// The KV cache as f32 values.
@group(0) @binding(2) var<storage, read_write> kc: array<f32>;
@group(0) @binding(3) var<storage, read_write> vc: array<f32>;

fn k_at(i: u32) -> f32 { return kc[i]; }
fn v_at(i: u32) -> f32 { return vc[i]; }
