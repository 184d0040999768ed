//#include common

// Causal grouped-query attention, flash-decoding style. attn_partial gives
// each workgroup one (split of 64 cache positions, head, token): it scores
// its positions, keeps their maximum m, the sum l of exp(score − m) and the
// exp-weighted sum of values, and writes (m, l, acc[head_dim]) to part.
// attn_reduce rescales and combines the splits of each (head, token). A
// decode step over a long context thus spreads across many workgroups
// instead of one per head, and prefill uses the same kernels with each
// token's own causal limit pos0+t. attn_single does both passes in one
// dispatch, one workgroup per (head, token), for contexts of at most
// SINGLE splits (shaders.AttnSingleSplits): the same arithmetic in the
// same order, so the same values, with one dispatch fewer per layer. The kv include (bindings 2 and 3, read
// through k_at and v_at) is kv_f32 or, for an f16 cache, kv_f16.
//
// gpt-oss (HF modeling_gpt_oss.py's eager_attention_forward and its
// sliding-window mask): with window > 0 a token at pos sees only
// positions pos-window+1..pos; the cache of such a layer is a ring of
// `ring` positions, position i at slot i mod ring (ring is the cache's
// length otherwise, so the modulo changes nothing); with has_sinks the
// head's sink logit joins the softmax's maximum and denominator in
// attn_reduce and gets no value.

struct P {
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
  scale: u32, // f32 bits: sqrt(head_dim), the divisor of the scores
  window: u32,
  ring: u32,
  has_sinks: u32,
  sinks_off: u32,
}


@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
//#include kv
@group(0) @binding(4) var<storage, read_write> part: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;
@group(0) @binding(6) var<storage, read_write> sinks: array<f32>;

//#include attend


fn part_base(t: u32, h: u32, s: u32) -> u32 {
  return ((t * p.heads + h) * p.nsplit + s) * (p.head_dim + 2u);
}

@compute @workgroup_size(64)
fn attn_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let s = wid.x;
  let h = wid.y;
  let t = wid.z;
  let pos = p.pos0 + t;
  let lo = s * CH;
  let hi = min(lo + CH, pos + 1u);
  let kvd = p.kv_heads * p.head_dim;
  let koff = (h / (p.heads / p.kv_heads)) * p.head_dim;
  let qo = p.q_off + t * p.q_stride + h * p.head_dim;
  let i = lo + lid;
  let first = first_pos(pos);
  let ok = i < hi && i >= first;
  var score = neg_inf();
  if (ok) {
    let slot = i % p.ring;
    var d = 0.0;
    for (var x = 0u; x < p.head_dim; x++) {
      d += q[qo + x] * k_at(slot * kvd + koff + x);
    }
    score = d / bitcast<f32>(p.scale);
  }
  red[lid] = score;
  workgroupBarrier();
  for (var st = CH / 2u; st > 0u; st >>= 1u) {
    if (lid < st) {
      red[lid] = max(red[lid], red[lid + st]);
    }
    workgroupBarrier();
  }
  let m = red[0];
  workgroupBarrier();
  var e = 0.0;
  if (ok) {
    e = exp(score - m);
  }
  sc[lid] = e;
  red[lid] = e;
  workgroupBarrier();
  for (var st = CH / 2u; st > 0u; st >>= 1u) {
    if (lid < st) {
      red[lid] += red[lid + st];
    }
    workgroupBarrier();
  }
  let b = part_base(t, h, s);
  if (lid == 0u) {
    part[b] = m;
    part[b + 1u] = red[0];
  }
  var n = 0u;
  if (hi > lo) {
    n = hi - lo;
  }
  for (var x = lid; x < p.head_dim; x += CH) {
    var a = 0.0;
    for (var j = 0u; j < n; j++) {
      a += sc[j] * v_at(((lo + j) % p.ring) * kvd + koff + x);
    }
    part[b + 2u + x] = a;
  }
}

@compute @workgroup_size(64)
fn attn_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let t = wid.y;
  let used = (p.pos0 + t) / CH + 1u; // splits holding positions ≤ pos0+t
  var mx = neg_inf();
  for (var s = 0u; s < used; s++) {
    mx = max(mx, part[part_base(t, h, s)]);
  }
  var l = 0.0;
  if (p.has_sinks != 0u) {
    let sink = sinks[p.sinks_off + h];
    mx = max(mx, sink);
    l = exp(sink - mx);
  }
  for (var s = 0u; s < used; s++) {
    let b = part_base(t, h, s);
    l += part[b + 1u] * exp(part[b] - mx);
  }
  let o = p.dst_off + t * p.dst_stride + h * p.head_dim;
  for (var x = lid; x < p.head_dim; x += 64u) {
    var a = 0.0;
    for (var s = 0u; s < used; s++) {
      let b = part_base(t, h, s);
      a += part[b + 2u + x] * exp(part[b] - mx);
    }
    dst[o + x] = a / l;
  }
}

// attn_single is attn_partial over every split of (head, token) followed
// by attn_reduce, in one workgroup (attend.wgsl). part is unused.
@compute @workgroup_size(64)
fn attn_single(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let t = wid.y;
  a_kvd = p.kv_heads * p.head_dim;
  a_koff = (h / (p.heads / p.kv_heads)) * p.head_dim;
  a_qo = p.q_off + t * p.q_stride + h * p.head_dim;
  attend(h, t, lid);
}

// The hooks of attend: q, k and v of the head, from the bindings.
fn sq(x: u32) -> f32 { return q[a_qo + x]; }
fn sk(i: u32, x: u32) -> f32 { return k_at((i % p.ring) * a_kvd + a_koff + x); }
fn sv(i: u32, x: u32) -> f32 { return v_at((i % p.ring) * a_kvd + a_koff + x); }
