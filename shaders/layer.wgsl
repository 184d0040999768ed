//#include common

// layer is a whole dense decoder layer for one decoded token in one
// workgroup, for models whose vectors fit workgroup memory
// (shaders.LayerFits): x += o·attention(rope(q), rope(k), v) with q, k, v
// the projections of rmsnorm(x), then x += down·(silu(gate·h) ⊙ up·h)
// with h = rmsnorm(x). It is the dispatches the backend otherwise records
// for such a layer — matvec_multi (norm in), attn_rope, matvec with the
// residual add, gate_up (norm in), matvec with the residual add — with
// the same arithmetic in the same order, phase after phase with barriers
// instead of dispatch boundaries: the norm is xn_on.wgsl's loop and
// 64-wide tree, each product row matvec's unit loop (four columns per
// dot, in column order; one row per invocation instead of four), the
// rotation attn_rope's, each head's attention attend.wgsl's arithmetic in
// one invocation (attend_head). The vectors live in workgroup memory; the
// cache is read for the earlier positions and written at pos0. On a CPU
// adapter every dispatch has a fixed cost that a small model's products
// do not amortise; five dispatches per layer become one. All weights are
// f32, in one buffer w at the word offsets of P.

struct P {
  // attention.wgsl's P (some fields unused here)
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
  // the rotation (attn_rope's)
  interleaved: u32,
  attn_factor: u32, // f32 bits
  // the layer
  dim: u32,
  ffn: u32,
  eps: u32, // f32 bits
  an: u32,  // word offsets in w: attention norm, q, k, v, o,
  wq: u32,
  wk: u32,
  wv: u32,
  wo: u32,
  fnw: u32, // FFN norm, gate, up, down
  wg: u32,
  wu: u32,
  wd: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> kc: array<f32>;
@group(0) @binding(4) var<storage, read_write> vc: array<f32>;
@group(0) @binding(5) var<storage, read> inv: array<u32>;

// LayerMaxDim and LayerMaxFFN in shaders.go bound these.
var<workgroup> hs: array<f32, 256>;   // the normalised x
var<workgroup> qs: array<f32, 256>;
var<workgroup> ks: array<f32, 256>;
var<workgroup> vs: array<f32, 256>;
var<workgroup> dst: array<f32, 256>;  // the heads' attention
var<workgroup> hid: array<f32, 1024>; // silu(gate·h) ⊙ up·h
var<workgroup> nred: array<f32, 64>;

// nz is 0, from a builtin: loop bounds that mix it in are not uniform-only,
// which keeps lavapipe from re-specialising the shader on every dispatch
// (see matvec.wgsl's store).
var<private> nz: u32;

// norm writes hs = nw ⊙ (x / sqrt(mean(x²) + eps)) for the norm weight at
// word off of w: xn_on.wgsl's sum, tree and products.
fn norm(lid: u32, off: u32) {
  let n = p.dim + nz;
  var s = 0.0;
  for (var i = lid; i < n; i += 64u) {
    let v = x[i];
    s += v * v;
  }
  nred[lid] = s;
  workgroupBarrier();
  for (var st = 32u; st > 0u; st >>= 1u) {
    if (lid < st) {
      nred[lid] += nred[lid + st];
    }
    workgroupBarrier();
  }
  let r = 1.0 / sqrt(nred[0] / f32(p.dim) + bitcast<f32>(p.eps));
  for (var i = lid; i < n; i += 64u) {
    hs[i] = bitcast<f32>(w[off + i]) * (r * x[i]);
  }
  workgroupBarrier();
}

fn w4(b: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(w[b], w[b + 1u], w[b + 2u], w[b + 3u]));
}

// The products of row r of the matrix at word base (cols columns, a
// multiple of four) with hs, dst and hid: matvec's unit loop.
fn dot_hs(base: u32, r: u32, cols: u32) -> f32 {
  var a = 0.0;
  let b = base + r * cols;
  for (var c = 0u; c < cols + nz; c += 4u) {
    a += dot(w4(b + c), vec4<f32>(hs[c], hs[c + 1u], hs[c + 2u], hs[c + 3u]));
  }
  return a;
}

fn dot_dst(base: u32, r: u32, cols: u32) -> f32 {
  var a = 0.0;
  let b = base + r * cols;
  for (var c = 0u; c < cols + nz; c += 4u) {
    a += dot(w4(b + c), vec4<f32>(dst[c], dst[c + 1u], dst[c + 2u], dst[c + 3u]));
  }
  return a;
}

fn dot_hid(base: u32, r: u32, cols: u32) -> f32 {
  var a = 0.0;
  let b = base + r * cols;
  for (var c = 0u; c < cols + nz; c += 4u) {
    a += dot(w4(b + c), vec4<f32>(hid[c], hid[c + 1u], hid[c + 2u], hid[c + 3u]));
  }
  return a;
}

// rot rotates pair j of the head at o of a (qs or ks, by which) at pos0,
// attn_rope's arithmetic.
fn rot(which: u32, o: u32, j: u32) {
  let half = p.head_dim / 2u;
  let a = f32(p.pos0) * bitcast<f32>(inv[j]);
  let af = bitcast<f32>(p.attn_factor);
  let c = cos(a) * af;
  let s = sin(a) * af;
  var ia = o + j;
  var ib = o + j + half;
  if ((p.interleaved | nz) != 0u) {
    ia = o + 2u * j;
    ib = ia + 1u;
  }
  if (which == 0u) {
    let v0 = qs[ia];
    let v1 = qs[ib];
    qs[ia] = v0 * c - v1 * s;
    qs[ib] = v0 * s + v1 * c;
  } else {
    let v0 = ks[ia];
    let v1 = ks[ib];
    ks[ia] = v0 * c - v1 * s;
    ks[ib] = v0 * s + v1 * c;
  }
}

@compute @workgroup_size(64)
fn layer(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  nz = wid.z >> 31u;
  let dim = p.dim + nz;
  let qd = p.heads * p.head_dim + nz;
  let kvd = p.kv_heads * p.head_dim + nz;
  let half = p.head_dim / 2u + nz;
  // attention: norm, q/k/v, rotation, cache store, attend, o + residual
  norm(lid, p.an);
  for (var r = lid; r < qd; r += 64u) {
    qs[r] = dot_hs(p.wq, r, p.dim);
  }
  for (var r = lid; r < kvd; r += 64u) {
    ks[r] = dot_hs(p.wk, r, p.dim);
    vs[r] = dot_hs(p.wv, r, p.dim);
  }
  workgroupBarrier();
  for (var i = lid; i < p.heads * half; i += 64u) {
    rot(0u, (i / half) * p.head_dim, i % half);
  }
  for (var i = lid; i < p.kv_heads * half; i += 64u) {
    rot(1u, (i / half) * p.head_dim, i % half);
  }
  workgroupBarrier();
  for (var i = lid; i < kvd; i += 64u) {
    kc[p.pos0 * kvd + i] = ks[i];
    vc[p.pos0 * kvd + i] = vs[i];
  }
  workgroupBarrier();
  for (var h = lid; h < p.heads + nz; h += 64u) {
    attend_head(h);
  }
  workgroupBarrier();
  for (var r = lid; r < dim; r += 64u) {
    x[r] = x[r] + dot_dst(p.wo, r, p.heads * p.head_dim);
  }
  storageBarrier();
  workgroupBarrier();
  // FFN: norm, gate and up with silu, down + residual
  norm(lid, p.fnw);
  for (var r = lid; r < p.ffn + nz; r += 64u) {
    let g = dot_hs(p.wg, r, p.dim);
    let u = dot_hs(p.wu, r, p.dim);
    hid[r] = (g * sigmoid(g)) * u;
  }
  workgroupBarrier();
  for (var r = lid; r < dim; r += 64u) {
    x[r] = x[r] + dot_hid(p.wd, r, p.ffn);
  }
}

// attend_head is attend.wgsl's attention of head h (attn_single's) in
// one invocation, with attend's arithmetic in attend's order: each score
// q·k (head_dim products in order) / scale; each 64-position split's
// maximum m_s (attend's tree of max, exact in any order) and their
// maximum mx; per split the exps e_j = exp(score − m_s), their sum by
// attend's 64-wide tree (replayed here on a private copy), added to l
// with weight exp(m_s − mx), and per element the value sum over the
// split's positions in order, added with the same weight; then the
// division by l. The scores are computed again in the second pass (the
// same operations on the same values) rather than kept. Attend's
// workgroup of 64 meets at about sixteen barriers per split and head;
// one invocation per head needs none, and on a CPU adapter a barrier is
// a switch between the workgroup's SIMD groups. Its loops run about
// 3·positions·head_dim iterations, which LayerFits keeps under
// shaders.LayerMaxLoop (lavapipe silently ends loops past 65535).
const SPLIT: u32 = 64u; // attend's CH, shaders.AttnSplit

var<private> es: array<f32, 64>;
var<private> tr: array<f32, 64>;
var<private> ms: array<f32, 16>; // attend's SINGLE: each split's maximum

fn kat(i: u32, o: u32) -> f32 {
  if (i == p.pos0) {
    return ks[o];
  }
  return kc[i * p.kv_heads * p.head_dim + o];
}

fn vat(i: u32, o: u32) -> f32 {
  if (i == p.pos0) {
    return vs[o];
  }
  return vc[i * p.kv_heads * p.head_dim + o];
}

fn score(qo: u32, koff: u32, i: u32) -> f32 {
  var d = 0.0;
  for (var x = 0u; x < p.head_dim + nz; x++) {
    d += qs[qo + x] * kat(i, koff + x);
  }
  return d / bitcast<f32>(p.scale);
}

fn split_max(qo: u32, koff: u32, lo: u32, hi: u32) -> f32 {
  var m = neg_inf();
  for (var i = lo; i < hi; i++) {
    m = max(m, score(qo, koff, i));
  }
  return m;
}

fn attend_head(h: u32) {
  let hd = p.head_dim + nz;
  let koff = (h / (p.heads / p.kv_heads)) * p.head_dim;
  let qo = h * p.head_dim;
  let pos = p.pos0 + nz;
  let used = pos / SPLIT + 1u;
  var mx = neg_inf();
  for (var s = 0u; s < used; s++) {
    let lo = s * SPLIT;
    let hi = min(lo + SPLIT, pos + 1u);
    ms[s] = split_max(qo, koff, lo, hi);
    mx = max(mx, ms[s]);
  }
  for (var x = 0u; x < hd; x++) {
    dst[qo + x] = 0.0;
  }
  var l = 0.0;
  for (var s = 0u; s < used; s++) {
    let lo = s * SPLIT;
    let hi = min(lo + SPLIT, pos + 1u);
    let m = ms[s];
    for (var j = 0u; j < SPLIT; j++) {
      var e = 0.0;
      if (lo + j < hi) {
        e = exp(score(qo, koff, lo + j) - m);
      }
      es[j] = e;
      tr[j] = e;
    }
    for (var st = SPLIT / 2u; st > 0u; st >>= 1u) {
      for (var j = 0u; j < st; j++) {
        tr[j] += tr[j + st];
      }
    }
    let w = exp(m - mx);
    l += tr[0] * w;
    let n = hi - lo;
    for (var x = 0u; x < hd; x++) {
      var a = 0.0;
      for (var j = 0u; j < n; j++) {
        a += es[j] * vat(lo + j, koff + x);
      }
      dst[qo + x] += a * w;
    }
  }
  for (var x = 0u; x < hd; x++) {
    dst[qo + x] = dst[qo + x] / l;
  }
}
