//#include common

// Elementwise steps of a dense (shared) SwiGLU expert. swiglu computes
// a = silu(a)·b over rows of width values; accum adds a gated expert
// output to dst: dst = (init ? 0 : dst) + sigmoid(g[t])·y (or y when there
// is no gate); mode 4 only zeroes dst.

struct P {
  rows: u32,
  cols: u32,
  dst_off: u32,
  dst_stride: u32,
  y_off: u32,
  y_stride: u32,
  g_off: u32,
  mode: u32, // 1 init, 2 gated, 4 zero
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  if (c >= p.cols || r >= p.rows) {
    return;
  }
  let a = p.dst_off + r * p.dst_stride + c;
  let v = dst[a];
  dst[a] = (v * sigmoid(v)) * y[p.y_off + r * p.y_stride + c];
}

@compute @workgroup_size(64)
fn accum(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  if (c >= p.cols || r >= p.rows) {
    return;
  }
  let o = p.dst_off + r * p.dst_stride + c;
  if ((p.mode & 4u) != 0u) {
    dst[o] = 0.0;
    return;
  }
  var v = y[p.y_off + r * p.y_stride + c];
  if ((p.mode & 2u) != 0u) {
    v = v * sigmoid(y[p.g_off + r]);
  }
  if ((p.mode & 1u) != 0u) {
    dst[o] = v;
  } else {
    dst[o] = dst[o] + v;
  }
}
