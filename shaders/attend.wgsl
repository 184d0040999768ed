// attend: the attention of one (head, token) in one workgroup of 64,
// attn_partial over every split followed by attn_reduce (attention.wgsl)
// with the same arithmetic in the same order: pass one scores each
// 64-position split and keeps its maximum m_s (attn_partial's tree), pass
// two takes each split's exp-sum l_s and value sum as attn_partial does and
// folds them in with weight exp(m_s − max) in split order, as attn_reduce
// does. The scores of at most SINGLE splits stay in workgroup memory
// between the passes (shaders.AttnSingleSplits), and heads are at most 256
// wide (shaders.AttnSingleDim).
//
// The including kernel has P's fields of attention.wgsl, the bindings dst
// and sinks, sets a_kvd, a_koff and a_qo, and defines sq(x) (element x of
// the head's q), sk(i, x) and sv(i, x) (element x of the head's k and v at
// position i).

const CH: u32 = 64u;
const SINGLE: u32 = 16u;

var<workgroup> sc: array<f32, CH>;
var<workgroup> red: array<f32, CH>;
var<workgroup> scores: array<f32, 1024>; // SINGLE * CH
var<workgroup> smax: array<f32, SINGLE>;
var<workgroup> oacc: array<f32, 256>; // lane x owns x, x+CH, ...

var<private> a_kvd: u32;
var<private> a_koff: u32;
var<private> a_qo: u32;

// first_pos is the first position a token at pos attends to.
fn first_pos(pos: u32) -> u32 {
  if (p.window > 0u && pos + 1u > p.window) {
    return pos + 1u - p.window;
  }
  return 0u;
}

fn attend(h: u32, t: u32, lid: u32) {
  let pos = p.pos0 + t;
  let used = pos / CH + 1u;
  let first = first_pos(pos);
  for (var s = 0u; s < used; s++) {
    let lo = s * CH;
    let hi = min(lo + CH, pos + 1u);
    let i = lo + lid;
    var score = neg_inf();
    if (i < hi && i >= first) {
      var d = 0.0;
      for (var x = 0u; x < p.head_dim; x++) {
        d += sq(x) * sk(i, x);
      }
      score = d / bitcast<f32>(p.scale);
    }
    scores[s * CH + lid] = score;
    red[lid] = score;
    workgroupBarrier();
    for (var st = CH / 2u; st > 0u; st >>= 1u) {
      if (lid < st) {
        red[lid] = max(red[lid], red[lid + st]);
      }
      workgroupBarrier();
    }
    if (lid == 0u) {
      smax[s] = red[0];
    }
    workgroupBarrier();
  }
  var mx = neg_inf();
  for (var s = 0u; s < used; s++) {
    mx = max(mx, smax[s]);
  }
  var l = 0.0;
  if (p.has_sinks != 0u) {
    let sink = sinks[p.sinks_off + h];
    mx = max(mx, sink);
    l = exp(sink - mx);
  }
  for (var x = lid; x < p.head_dim; x += CH) {
    oacc[x] = 0.0;
  }
  for (var s = 0u; s < used; s++) {
    let lo = s * CH;
    let hi = min(lo + CH, pos + 1u);
    let i = lo + lid;
    let m = smax[s];
    var e = 0.0;
    if (i < hi && i >= first) {
      e = exp(scores[s * CH + lid] - m);
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
    let w = exp(m - mx);
    l += red[0] * w;
    let n = hi - lo; // hi > lo: s < used
    for (var x = lid; x < p.head_dim; x += CH) {
      var a = 0.0;
      for (var j = 0u; j < n; j++) {
        a += sc[j] * sv(lo + j, x);
      }
      oacc[x] += a * w;
    }
    workgroupBarrier(); // sc and red are rewritten by the next split
  }
  let o = p.dst_off + t * p.dst_stride + h * p.head_dim;
  for (var x = lid; x < p.head_dim; x += CH) {
    dst[o + x] = oacc[x] / l;
  }
}
