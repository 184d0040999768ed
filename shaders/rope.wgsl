//#include common

// rope rotates pairs of each head of row t by (pos0+t)·inv_freq[i], cos and
// sin scaled by the attention factor. Interleaved pairs are (2i, 2i+1);
// half pairs (i, i+head_dim/2). One invocation per pair.

struct P {
  rows: u32,
  cols: u32,
  head_dim: u32,
  pos0: u32,
  x_off: u32,
  x_stride: u32,
  interleaved: u32,
  attn_factor: u32, // f32 bits
  inv_off: u32,     // word offset of the inverse frequencies in inv
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> inv: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let half = p.head_dim / 2u;
  let q = gid.x;
  let t = gid.y;
  if (q >= p.cols / 2u || t >= p.rows) {
    return;
  }
  let h = q / half;
  let i = q % half;
  let a = f32(p.pos0 + t) * bitcast<f32>(inv[p.inv_off + i]);
  let af = bitcast<f32>(p.attn_factor);
  let c = cos(a) * af;
  let s = sin(a) * af;
  let base = p.x_off + t * p.x_stride + h * p.head_dim;
  var ia = base + i;
  var ib = base + i + half;
  if (p.interleaved != 0u) {
    ia = base + 2u * i;
    ib = ia + 1u;
  }
  let v0 = x[ia];
  let v1 = x[ib];
  x[ia] = v0 * c - v1 * s;
  x[ib] = v0 * s + v1 * c;
}
