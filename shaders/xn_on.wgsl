// x through an RMSNorm (Spec.Norm): the kernel is bound to the raw row x
// and reads it as rmsnorm.wgsl's main would have written it,
// nw ⊙ (x / sqrt(mean(x²) + eps)), with nw the norm's weight at p.n_off
// and eps p.eps. Every workgroup computes the row's sum of squares itself
// (norm_begin) with rmsnorm.wgsl's loop and tree over 64 invocations, so
// the values, and every product, are rmsnorm-then-matvec's bit for bit;
// that costs each workgroup one read of the row, small beside the rows of
// weights it reads. norm_write_h has the first workgroup also write the
// normalised row to h at p.h_off, for the kernels after it that read it.
// The including kernel declares x (array<vec4<f32>>), nw, h, p.n_off,
// p.eps and p.h_off, and runs with 64 invocations per workgroup.

var<workgroup> nred: array<f32, 64>;
var<private> nbase: u32;
var<private> ninv: f32;

// xe is element c of x.
fn xe(c: u32) -> f32 {
  return x[c >> 2u][c & 3u];
}

// norm_begin computes 1/rms of the row of cols values at base (a multiple
// of four). Call in uniform control flow, before any x4.
fn norm_begin(lid: u32, base: u32, cols: u32) {
  nbase = base;
  var s = 0.0;
  for (var i = lid; i < cols; i += 64u) {
    let v = xe(base + i);
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
  ninv = 1.0 / sqrt(nred[0] / f32(cols) + bitcast<f32>(p.eps));
}

fn nw4(i: u32) -> vec4<f32> {
  let o = p.n_off + i;
  return bitcast<vec4<f32>>(vec4<u32>(nw[o], nw[o + 1u], nw[o + 2u], nw[o + 3u]));
}

// x4 is the normalised x[c..c+4] for c a multiple of four.
fn x4(c: u32) -> vec4<f32> {
  return nw4(c - nbase) * (vec4<f32>(ninv) * x[c >> 2u]);
}

fn norm_write_h(first: bool, lid: u32, base: u32, cols: u32) {
  if (first) {
    for (var i = lid; i < cols; i += 64u) {
      h[p.h_off + i] = bitcast<f32>(nw[p.n_off + i]) * (ninv * xe(base + i));
    }
  }
}
