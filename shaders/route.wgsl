//#include common

// route turns one token's router logits into its top-K experts in one
// invocation: softmax or sigmoid scores, optional selection bias (used to
// choose, not to weight), top-K with ties to the lower index, optional
// renormalisation and scaling, as runtime/routing.Select; with groups > 1
// only the experts of the topk_groups best of groups equal groups are
// candidates, a group scoring its best selection score or (top2) the sum
// of its two best, as routing.LimitGroups (DeepSeek). Output per token:
// K pairs (expert, weight bits). E and K are specialised into the text.

struct P {
  t: u32,
  logits_off: u32,
  logits_stride: u32,
  sigmoid: u32,
  has_bias: u32,
  bias_off: u32,
  norm: u32,
  scale: u32, // f32 bits
  routes_off: u32,
  groups: u32,
  topk_groups: u32,
  top2: u32,
}

const E: u32 = {{E}}u;
const K: u32 = {{K}}u;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<u32>;
@group(0) @binding(3) var<storage, read_write> routes: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x;
  if (t >= p.t) {
    return;
  }
  let lo = p.logits_off + t * p.logits_stride;
  var sc: array<f32, E>;
  var sel: array<f32, E>;
  var taken: array<bool, E>;
  if (p.sigmoid != 0u) {
    for (var i = 0u; i < E; i++) {
      sc[i] = sigmoid(logits[lo + i]);
    }
  } else {
    var m = logits[lo];
    for (var i = 1u; i < E; i++) {
      m = max(m, logits[lo + i]);
    }
    var sum = 0.0;
    for (var i = 0u; i < E; i++) {
      sc[i] = exp(logits[lo + i] - m);
      sum += sc[i];
    }
    for (var i = 0u; i < E; i++) {
      sc[i] = sc[i] / sum;
    }
  }
  for (var i = 0u; i < E; i++) {
    sel[i] = sc[i];
    if (p.has_bias != 0u) {
      sel[i] += bitcast<f32>(bias[p.bias_off + i]);
    }
  }
  if (p.groups > 1u) {
    let size = E / p.groups;
    var gs: array<f32, E>;
    var keep: array<bool, E>;
    for (var g = 0u; g < p.groups; g++) {
      let g0 = g * size;
      var a = sel[g0];
      var b = -3.0e38;
      for (var i = g0 + 1u; i < g0 + size; i++) {
        let v = sel[i];
        if (v > a) {
          b = a;
          a = v;
        } else if (v > b) {
          b = v;
        }
      }
      gs[g] = a;
      if (p.top2 != 0u) {
        gs[g] = a + b;
      }
    }
    for (var k = 0u; k < p.topk_groups; k++) {
      var best = p.groups;
      for (var g = 0u; g < p.groups; g++) {
        if (!keep[g] && (best == p.groups || gs[g] > gs[best])) {
          best = g;
        }
      }
      keep[best] = true;
    }
    for (var i = 0u; i < E; i++) {
      if (!keep[i / size]) {
        taken[i] = true; // outside the chosen groups: never a candidate
      }
    }
  }
  var ids: array<u32, K>;
  var wts: array<f32, K>;
  var sum = 0.0;
  for (var k = 0u; k < K; k++) {
    var best = E;
    for (var i = 0u; i < E; i++) {
      if (!taken[i] && (best == E || sel[i] > sel[best])) {
        best = i;
      }
    }
    taken[best] = true;
    ids[k] = best;
    wts[k] = sc[best];
    sum += sc[best];
  }
  let scale = bitcast<f32>(p.scale);
  let o = p.routes_off + 2u * K * t;
  for (var k = 0u; k < K; k++) {
    var v = wts[k];
    if (p.norm != 0u && sum > 0.0) {
      v = v / sum;
    }
    routes[o + 2u * k] = ids[k];
    routes[o + 2u * k + 1u] = bitcast<u32>(v * scale);
  }
}
