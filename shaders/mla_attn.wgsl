// mla_attn is multi-head latent attention's attention over keys and values
// expanded from the latent cache (DeepseekV2Attention in
// modeling_deepseek.py): per query row t and head h, scores
// (q_nope·k_nope + q_pe·k_pe)/div over positions 0..pos0+t, summed in that
// order, a softmax (max, exp, sum, divide, as routing.Softmax), then the
// weighted sum of v in position order: the CPU's expanded path
// (runtime/cpu MLAAttention). One invocation per (t, h); sc holds its
// scores.

struct P {
  t: u32,
  heads: u32,
  nope: u32,
  rope: u32,
  v: u32,
  pos0: u32,
  q_off: u32,  // q rows, stride heads·(nope+rope), each head [nope | rope]
  kv_off: u32, // expanded rows, stride heads·(nope+v), each head [k_nope | v]
  pe_off: u32, // rotated shared keys, stride rope
  out_off: u32, // out rows, stride heads·v
  sc_stride: u32,
  div: u32, // f32 bits
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read_write> kv: array<f32>;
@group(0) @binding(3) var<storage, read_write> pe: array<f32>;
@group(0) @binding(4) var<storage, read_write> sc: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= p.t * p.heads) {
    return;
  }
  let t = j / p.heads;
  let h = j % p.heads;
  let n = p.pos0 + t + 1u;
  let d = p.nope + p.rope;
  let kvw = p.nope + p.v;
  let qb = p.q_off + t * p.heads * d + h * d;
  let so = j * p.sc_stride;
  let div = bitcast<f32>(p.div);
  var m = 0.0;
  for (var i = 0u; i < n; i++) {
    let kb = p.kv_off + i * p.heads * kvw + h * kvw;
    let pb = p.pe_off + i * p.rope;
    var dot = 0.0;
    for (var x = 0u; x < p.nope; x++) {
      dot += q[qb + x] * kv[kb + x];
    }
    for (var x = 0u; x < p.rope; x++) {
      dot += q[qb + p.nope + x] * pe[pb + x];
    }
    let s = dot / div;
    sc[so + i] = s;
    if (i == 0u || s > m) {
      m = s;
    }
  }
  var sum = 0.0;
  for (var i = 0u; i < n; i++) {
    let e = exp(sc[so + i] - m);
    sc[so + i] = e;
    sum += e;
  }
  for (var i = 0u; i < n; i++) {
    sc[so + i] = sc[so + i] / sum;
  }
  let ob = p.out_off + t * p.heads * p.v + h * p.v;
  for (var x = 0u; x < p.v; x++) {
    var acc = 0.0;
    for (var i = 0u; i < n; i++) {
      acc += sc[so + i] * kv[p.kv_off + i * p.heads * kvw + h * kvw + p.nope + x];
    }
    out[ob + x] = acc;
  }
}
