// sample draws one token as runtime/sample.Sampler does with Temperature
// > 0 and 1 ≤ TopK ≤ K (specialised), optional TopP and MinP, and no
// repetition penalty: K rounds of a workgroup argmax find the top-K
// logits in rank order (each round takes the best strictly below the
// previous one, ties by lower id), then one invocation applies the
// temperature, softmax, top-p, min-p and the draw with the counter-based
// uniform of sample.Uniform(seed, draw). Sums are f32 where the host sums
// in f64: over at most K terms ≤ 1 the difference moves the draw only
// when u falls within ~1e-6 of a boundary.

struct P {
  n: u32,
  off: u32,
  seed_lo: u32,
  seed_hi: u32,
  draw: u32,
  temp: u32,  // f32 bits
  top_p: u32, // f32 bits
  min_p: u32, // f32 bits
}

const K: u32 = {{K}}u;
const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;
var<workgroup> top_v: array<f32, K>;
var<workgroup> top_i: array<u32, K>;

fn pcg_hash(x: u32) -> u32 {
  let state = x * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn uniform01(seed_lo: u32, seed_hi: u32, n: u32) -> f32 {
  let k = pcg_hash(pcg_hash(seed_lo) ^ seed_hi);
  let h = pcg_hash(pcg_hash(n ^ k) ^ k);
  return f32(h >> 8u) * (1.0 / 16777216.0);
}

// ranks_before reports whether (x, i) ranks before (y, j): larger value,
// or equal value and lower id.
fn ranks_before(x: f32, i: u32, y: f32, j: u32) -> bool {
  return x > y || (x == y && i < j);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var r = 0u; r < K; r++) {
    var pv = 0.0;
    var pi = NONE;
    if (r > 0u) {
      pv = top_v[r - 1u];
      pi = top_i[r - 1u];
    }
    var best = NONE;
    var bval = 0.0;
    for (var i = lid; i < p.n; i += 256u) {
      let x = v[p.off + i];
      let below = pi == NONE || ranks_before(pv, pi, x, i);
      if (r > 0u && pi == NONE) {
        continue; // the previous round found nothing: fewer than K values
      }
      if (below && (best == NONE || x > bval)) {
        best = i;
        bval = x;
      }
    }
    bv[lid] = bval;
    bi[lid] = best;
    workgroupBarrier();
    for (var st = 128u; st > 0u; st >>= 1u) {
      if (lid < st) {
        let oi = bi[lid + st];
        let ov = bv[lid + st];
        if (oi != NONE && (bi[lid] == NONE || ranks_before(ov, oi, bv[lid], bi[lid]))) {
          bi[lid] = oi;
          bv[lid] = ov;
        }
      }
      workgroupBarrier();
    }
    if (lid == 0u) {
      top_v[r] = bv[0];
      top_i[r] = bi[0];
    }
    workgroupBarrier();
  }
  if (lid != 0u) {
    return;
  }
  let t = bitcast<f32>(p.temp);
  let m = top_v[0] / t;
  var e: array<f32, K>;
  var id: array<u32, K>;
  var n = 0u;
  for (var j = 0u; j < K; j++) {
    if (top_i[j] == NONE) {
      break;
    }
    let x = exp(top_v[j] / t - m);
    if (x > 0.0) {
      // insertion by (e descending, id ascending), as sample's keys sort
      var k = n;
      while (k > 0u && (e[k - 1u] < x || (e[k - 1u] == x && id[k - 1u] > top_i[j]))) {
        e[k] = e[k - 1u];
        id[k] = id[k - 1u];
        k--;
      }
      e[k] = x;
      id[k] = top_i[j];
      n++;
    }
  }
  let tp = bitcast<f32>(p.top_p);
  if (tp > 0.0 && tp < 1.0) {
    var sum = 0.0;
    for (var j = 0u; j < n; j++) {
      sum += e[j];
    }
    let goal = tp * sum;
    var cum = 0.0;
    for (var j = 0u; j < n; j++) {
      cum += e[j];
      if (cum >= goal) {
        n = j + 1u;
        break;
      }
    }
  }
  let mp = bitcast<f32>(p.min_p);
  if (mp > 0.0) {
    var k = 1u;
    while (k < n && e[k] >= mp) {
      k++;
    }
    n = k;
  }
  if (n <= 1u) {
    out[0] = id[0];
    return;
  }
  var total = 0.0;
  for (var j = 0u; j < n; j++) {
    total += e[j];
  }
  let goal = uniform01(p.seed_lo, p.seed_hi, p.draw) * total;
  var cum = 0.0;
  for (var j = 0u; j < n; j++) {
    cum += e[j];
    if (cum > goal) {
      out[0] = id[j];
      return;
    }
  }
  out[0] = id[n - 1u];
}
