//#include common
//#include route_pick

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
//
// Two optional parts. QK-norm (qgroup, kgroup > 0): q and k normalised
// in groups of those widths (a head, or the whole projection) after
// their products, rmsnorm.wgsl's in_place2 arithmetic. A routed FFN
// (moe = 1; Spec.E experts, Spec.K chosen): the FFN norm and the
// router's E rows as router.wgsl's one-lane matvec, route_pick's
// selection by invocation 0, each chosen expert's gate and up rows as
// moe.wgsl's moe_gu (MoELanes lane partials over the four-column units,
// added in lane order; silu(gate)·up), and each output row as
// moe_down.wgsl's moe_down_sum (per lane the slots' weight·partial in
// rank order, the lanes added in order) plus the residual: the five
// dispatches router_route, moe_gu, moe_down_sum stand for with
// rmsnorm, one dispatch. The experts' table is at word et of w: per
// expert its gate, up and down offsets and its width.

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
  // QK-norm: the weights' offsets and group widths (0: none)
  qn: u32,
  kn: u32,
  qgroup: u32,
  kgroup: u32,
  // a routed FFN instead of gate, up and down
  moe: u32,
  wr: u32,   // the router's E rows
  et: u32,   // the experts' table
  maxw: u32, // the widest expert
  // route.wgsl's fields (route_pick.wgsl); the logits are this kernel's
  t_route: u32,
  logits_off: u32,
  logits_stride: u32,
  sigmoid: u32,
  has_bias: u32,
  bias_off: u32,
  norm: u32,
  route_scale: u32, // f32 bits
  routes_off: u32,
  groups: u32,
  topk_groups: u32,
  top2: u32,
}

const E: u32 = {{E}}u;
const K: u32 = {{K}}u;
const K2: u32 = 2u * K;
const NONE: u32 = 0xffffffffu;
const MOE_L: u32 = {{L}}u; // moe_io.wgsl's L as the backend runs it (Spec.L: shaders.MoELanes or 1)

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
// The routed FFN: the router's logits and the chosen (expert, weight
// bits) pairs; route_pick reads and writes them by these names. No
// selection bias (has_bias 0): bias is a placeholder.
var<workgroup> logits: array<f32, E>;
var<workgroup> routes: array<u32, K2>;
var<private> bias: array<u32, 1>;

// nz is 0, from a builtin: loop bounds that mix it in are not uniform-only,
// which keeps lavapipe from re-specialising the shader on every dispatch
// (see matvec.wgsl's store).
var<private> nz: u32;

// sum64 is the sum of the workgroup's 64 values s by the tree the
// unfused norms use (rmsnorm.wgsl, xn_on.wgsl), so the fused layer's
// norms keep their bits. Every invocation must call it.
fn sum64(lid: u32, s: f32) -> f32 {
  nred[lid] = s;
  workgroupBarrier();
  for (var st = 32u; st > 0u; st >>= 1u) {
    if (lid < st) {
      nred[lid] += nred[lid + st];
    }
    workgroupBarrier();
  }
  return nred[0];
}

// norm writes hs = nw ⊙ (x / sqrt(mean(x²) + eps)) for the norm weight at
// word off of w: xn_on.wgsl's sum, tree and products.
fn norm(lid: u32, off: u32) {
  let n = p.dim + nz;
  var s = 0.0;
  for (var i = lid; i < n; i += 64u) {
    let v = x[i];
    s += v * v;
  }
  let r = 1.0 / sqrt(sum64(lid, s) / f32(p.dim) + bitcast<f32>(p.eps));
  for (var i = lid; i < n; i += 64u) {
    hs[i] = bitcast<f32>(w[off + i]) * (r * x[i]);
  }
  workgroupBarrier();
}

// gnorm normalises group g (of n values) of qs (which 0) or ks (1) in
// place with the weight at word off of w: rmsnorm.wgsl's loop, tree and
// products.
fn gnorm(lid: u32, which: u32, g: u32, n: u32, off: u32) {
  let o = g * n;
  var s = 0.0;
  for (var i = lid; i < n; i += 64u) {
    var v = ks[o + i];
    if (which == 0u) {
      v = qs[o + i];
    }
    s += v * v;
  }
  let r = 1.0 / sqrt(sum64(lid, s) / f32(n) + bitcast<f32>(p.eps));
  for (var i = lid; i < n; i += 64u) {
    if (which == 0u) {
      qs[o + i] = bitcast<f32>(w[off + i]) * (r * qs[o + i]);
    } else {
      ks[o + i] = bitcast<f32>(w[off + i]) * (r * ks[o + i]);
    }
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
  if (p.qgroup != 0u) {
    // Uniform bounds (no nz): the groups' barriers need them.
    for (var g = 0u; g < p.heads * p.head_dim / p.qgroup; g++) {
      gnorm(lid, 0u, g, p.qgroup, p.qn);
    }
    for (var g = 0u; g < p.kv_heads * p.head_dim / p.kgroup; g++) {
      gnorm(lid, 1u, g, p.kgroup, p.kn);
    }
  }
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
  if (p.moe != 0u) {
    moe_ffn(lid);
    return;
  }
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

// moe_ffn is the routed FFN on hs (the FFN norm's output), adding to x.
fn moe_ffn(lid: u32) {
  // router.wgsl with one lane per row: each logit row's units in order.
  for (var r = lid; r < E + nz; r += 64u) {
    logits[r] = dot_hs(p.wr, r, p.dim);
  }
  workgroupBarrier();
  if (lid == 0u) {
    route_token(0u);
  }
  workgroupBarrier();
  // moe_gu with its activation: row i of slot k's expert.
  for (var j = lid; j < K * p.maxw + nz; j += 64u) {
    let k = j / p.maxw;
    let i = j % p.maxw;
    let e = routes[2u * k];
    if (e == NONE) {
      continue;
    }
    let t = p.et + 4u * e;
    if (i >= w[t + 3u]) {
      continue;
    }
    let gb = w[t] + i * p.dim;
    let ub = w[t + 1u] + i * p.dim;
    let n = p.dim / 4u;
    var gs = 0.0;
    var us = 0.0;
    for (var l = 0u; l < MOE_L; l++) {
      var ga = 0.0;
      var ua = 0.0;
      for (var u = l; u < n; u += MOE_L) {
        let hv = vec4<f32>(hs[4u * u], hs[4u * u + 1u], hs[4u * u + 2u], hs[4u * u + 3u]);
        ga += dot(w4(gb + 4u * u), hv);
        ua += dot(w4(ub + 4u * u), hv);
      }
      if (l == 0u) {
        gs = ga;
        us = ua;
      } else {
        gs += ga;
        us += ua;
      }
    }
    hid[k * p.maxw + i] = (gs * sigmoid(gs)) * us;
  }
  workgroupBarrier();
  // moe_down_sum: output row r, per lane the slots in rank order.
  for (var r = lid; r < p.dim + nz; r += 64u) {
    var acc = 0.0;
    for (var l = 0u; l < MOE_L; l++) {
      var s = 0.0;
      for (var k = 0u; k < K; k++) {
        let e = routes[2u * k];
        if (e == NONE) {
          continue;
        }
        let width = w[p.et + 4u * e + 3u];
        if (width == 0u) {
          continue;
        }
        let db = w[p.et + 4u * e + 2u] + r * width;
        let hb = k * p.maxw;
        let n = width / 4u;
        var a = 0.0;
        for (var u = l; u < n; u += MOE_L) {
          let c = 4u * u;
          a += dot(w4(db + c), vec4<f32>(hid[hb + c], hid[hb + c + 1u], hid[hb + c + 2u], hid[hb + c + 3u]));
        }
        for (var c = 4u * n + l; c < width; c += MOE_L) {
          a += bitcast<f32>(w[db + c]) * hid[hb + c];
        }
        s += bitcast<f32>(routes[2u * k + 1u]) * a;
      }
      if (l == 0u) {
        acc = s;
      } else {
        acc += s;
      }
    }
    x[r] = x[r] + acc;
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
