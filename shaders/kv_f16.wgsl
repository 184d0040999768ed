// The KV cache as f16 pairs packed in u32 words (see pack_f16.wgsl): value
// i is half i&1 of word i/2.
@group(0) @binding(2) var<storage, read_write> kc: array<u32>;
@group(0) @binding(3) var<storage, read_write> vc: array<u32>;

fn k_at(i: u32) -> f32 { return unpack2x16float(kc[i >> 1u])[i & 1u]; }
fn v_at(i: u32) -> f32 { return unpack2x16float(vc[i >> 1u])[i & 1u]; }
