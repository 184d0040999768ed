//#include common

// attn_rope is a decode step's attention in one dispatch: what was rope(q),
// rope(k), the cache store (kvstore.wgsl's rope_store) and attn_single.
// One workgroup per head, one token (at position pos0), f32 cache of the
// full context (no ring). Each workgroup rotates its head's q (rope.wgsl's
// arithmetic) into workgroup memory and back into q, and its kv head's k
// into workgroup memory; the first workgroup of each kv head's group also
// stores that k and the token's v at position pos0 of the caches. The
// workgroups read position pos0 from their own copies (the rotated k and
// the v binding), never from the cache a sibling is writing, and the rest
// of the context from the caches, and attend (attend.wgsl): the values of
// rope_store followed by attn_single. k is left unrotated: siblings read
// it while the first one stores, so it cannot be rotated in place; the
// backend keeps the rope of k aside for any later reader.

struct P {
  // attention.wgsl's P
  t: u32,
  heads: u32,
  kv_heads: u32,
  head_dim: u32,
  pos0: u32,
  q_off: u32,
  q_stride: u32,
  dst_off: u32,
  dst_stride: u32,
  nsplit: u32,
  scale: u32,
  window: u32,
  ring: u32,
  has_sinks: u32,
  sinks_off: u32,
  // the rotation and the token's k and v
  interleaved: u32,
  attn_factor: u32, // f32 bits
  k_off: u32,
  v_off: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read_write> kc: array<f32>;
@group(0) @binding(3) var<storage, read_write> vc: array<f32>;
@group(0) @binding(4) var<storage, read_write> k: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst: array<f32>;
@group(0) @binding(7) var<storage, read_write> sinks: array<f32>;
@group(0) @binding(8) var<storage, read> inv: array<u32>;

//#include attend

var<workgroup> qs: array<f32, 256>;
var<workgroup> ks: array<f32, 256>;
var<private> a_vo: u32;

// rot_cs gives rotation pair j's indices in a head and its scaled cos and
// sin at pos (kvstore.wgsl's pair, for one head).
struct Rot {
  ia: u32,
  ib: u32,
  c: f32,
  s: f32,
}

fn rot_cs(j: u32, pos: u32) -> Rot {
  let half = p.head_dim / 2u;
  let a = f32(pos) * bitcast<f32>(inv[j]);
  let af = bitcast<f32>(p.attn_factor);
  var ia = j;
  var ib = j + half;
  if (p.interleaved != 0u) {
    ia = 2u * j;
    ib = ia + 1u;
  }
  return Rot(ia, ib, cos(a) * af, sin(a) * af);
}

@compute @workgroup_size(64)
fn attn_rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let group = p.heads / p.kv_heads;
  let kh = h / group;
  let pos = p.pos0;
  a_kvd = p.kv_heads * p.head_dim;
  a_koff = kh * p.head_dim;
  a_qo = p.q_off + h * p.head_dim;
  a_vo = p.v_off + a_koff;
  let ko = p.k_off + a_koff;
  let first = h % group == 0u;
  for (var j = lid; j < p.head_dim / 2u; j += CH) {
    let e = rot_cs(j, pos);
    let q0 = q[a_qo + e.ia];
    let q1 = q[a_qo + e.ib];
    let rq0 = q0 * e.c - q1 * e.s;
    let rq1 = q0 * e.s + q1 * e.c;
    qs[e.ia] = rq0;
    qs[e.ib] = rq1;
    q[a_qo + e.ia] = rq0;
    q[a_qo + e.ib] = rq1;
    let k0 = k[ko + e.ia];
    let k1 = k[ko + e.ib];
    let rk0 = k0 * e.c - k1 * e.s;
    let rk1 = k0 * e.s + k1 * e.c;
    ks[e.ia] = rk0;
    ks[e.ib] = rk1;
    if (first) {
      kc[pos * a_kvd + a_koff + e.ia] = rk0;
      kc[pos * a_kvd + a_koff + e.ib] = rk1;
    }
  }
  if (first) {
    for (var x = lid; x < p.head_dim; x += CH) {
      vc[pos * a_kvd + a_koff + x] = v[a_vo + x];
    }
  }
  workgroupBarrier();
  attend(h, 0u, lid);
}

// The hooks of attend: position pos0 from this workgroup's copies, the
// others from the caches.
fn sq(x: u32) -> f32 { return qs[x]; }

fn sk(i: u32, x: u32) -> f32 {
  if (i == p.pos0) {
    return ks[x];
  }
  return kc[i * a_kvd + a_koff + x];
}

fn sv(i: u32, x: u32) -> f32 {
  if (i == p.pos0) {
    return v[a_vo + x];
  }
  return vc[i * a_kvd + a_koff + x];
}
