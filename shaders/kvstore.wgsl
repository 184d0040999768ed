//#include common

// The attention step before the flash-decoding passes, in one dispatch
// instead of four: rope_store rotates q and k in place (rope.wgsl's
// arithmetic, so the same bits) and stores the rotated k and v into an
// f32 cache; store only stores k and v (f32, or packed f16 pairs as
// pack_f16.wgsl does). Row t of k and v goes to cache position pos0 + t.
//
// One invocation per job of token gid.y: for rope_store, jobs
// [0, q_cols/2) rotate a pair of q, the next k_cols/2 rotate a pair of k
// and store both its elements, the last kv_dim store one element of v;
// for store, jobs [0, kv_dim) store an element (f32) or a pair (f16) of
// both k and v.

struct P {
  rows: u32,
  head_dim: u32,
  pos0: u32,
  interleaved: u32,
  attn_factor: u32, // f32 bits
  inv_off: u32,
  q_off: u32,
  q_stride: u32,
  q_cols: u32,
  k_off: u32,
  k_stride: u32,
  v_off: u32,
  v_stride: u32,
  kv_dim: u32,
  half_cache: u32, // store: the cache holds packed f16 pairs
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> inv: array<u32>;
@group(0) @binding(2) var<storage, read_write> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> k: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
// The caches as words: f32 bits, or two f16 packed.
@group(0) @binding(5) var<storage, read_write> kc: array<u32>;
@group(0) @binding(6) var<storage, read_write> vc: array<u32>;

struct Pair {
  ia: u32,
  ib: u32,
  c: f32,
  s: f32,
}

// pair returns the indices, relative to a row, of rotation pair j and its
// cos and sin at position pos.
fn pair(j: u32, pos: u32) -> Pair {
  let half = p.head_dim / 2u;
  let h = j / half;
  let i = j % half;
  let a = f32(pos) * bitcast<f32>(inv[p.inv_off + i]);
  let af = bitcast<f32>(p.attn_factor);
  var ia = h * p.head_dim + i;
  var ib = ia + half;
  if (p.interleaved != 0u) {
    ia = h * p.head_dim + 2u * i;
    ib = ia + 1u;
  }
  return Pair(ia, ib, cos(a) * af, sin(a) * af);
}

@compute @workgroup_size(64)
fn rope_store(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.y;
  var j = gid.x;
  if (t >= p.rows) {
    return;
  }
  let nq = p.q_cols / 2u;
  let nk = p.kv_dim / 2u;
  let pos = p.pos0 + t;
  if (j < nq + nk) {
    var kj = false;
    if (j >= nq) {
      j -= nq;
      kj = true;
    }
    let e = pair(j, pos);
    let ia = e.ia;
    let ib = e.ib;
    let c = e.c;
    let s = e.s;
    if (!kj) {
      let base = p.q_off + t * p.q_stride;
      let v0 = q[base + ia];
      let v1 = q[base + ib];
      q[base + ia] = v0 * c - v1 * s;
      q[base + ib] = v0 * s + v1 * c;
    } else {
      let base = p.k_off + t * p.k_stride;
      let v0 = k[base + ia];
      let v1 = k[base + ib];
      let r0 = v0 * c - v1 * s;
      let r1 = v0 * s + v1 * c;
      k[base + ia] = r0;
      k[base + ib] = r1;
      let cb = pos * p.kv_dim;
      kc[cb + ia] = bitcast<u32>(r0);
      kc[cb + ib] = bitcast<u32>(r1);
    }
    return;
  }
  j -= nq + nk;
  if (j < p.kv_dim) {
    vc[pos * p.kv_dim + j] = bitcast<u32>(v[p.v_off + t * p.v_stride + j]);
  }
}

@compute @workgroup_size(64)
fn store(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.y;
  let j = gid.x;
  if (t >= p.rows) {
    return;
  }
  let pos = p.pos0 + t;
  let ko = p.k_off + t * p.k_stride;
  let vo = p.v_off + t * p.v_stride;
  if (p.half_cache == 0u) {
    if (j < p.kv_dim) {
      kc[pos * p.kv_dim + j] = bitcast<u32>(k[ko + j]);
      vc[pos * p.kv_dim + j] = bitcast<u32>(v[vo + j]);
    }
    return;
  }
  // Pairs (2j, 2j+1) of a row into word pos·kv_dim/2 + j, as pack_f16.
  if (j < p.kv_dim / 2u) {
    let w = pos * p.kv_dim / 2u + j;
    kc[w] = pack2x16float(vec2<f32>(k[ko + 2u * j], k[ko + 2u * j + 1u]));
    vc[w] = pack2x16float(vec2<f32>(v[vo + 2u * j], v[vo + 2u * j + 1u]));
  }
}
