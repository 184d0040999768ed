// route_token is route.wgsl's work for token t: its logits in logits at
// p.logits_off + t·p.logits_stride, its K (expert, weight bits) pairs to
// routes at p.routes_off + 2K·t. The including kernel declares logits,
// bias and routes and P's route fields (see route.wgsl), E and K.
fn route_token(t: u32) {
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
  let scale = bitcast<f32>(p.route_scale);
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
