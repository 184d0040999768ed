// argmax writes the index of the largest of n values (the lowest index
// among equals) to out[0]: one workgroup, strided scan then tree reduction.

struct P {
  n: u32,
  off: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var best = 0xffffffffu;
  var bval = 0.0;
  for (var i = lid; i < p.n; i += 256u) {
    let x = v[p.off + i];
    if (best == 0xffffffffu || x > bval) {
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
      if (oi != 0xffffffffu && (bi[lid] == 0xffffffffu || ov > bv[lid] || (ov == bv[lid] && oi < bi[lid]))) {
        bi[lid] = oi;
        bv[lid] = ov;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    out[0] = bi[0];
  }
}
