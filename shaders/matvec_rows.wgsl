//#include common
//#include weights
//#include format
//#include dot

// matvec_rows is matmul for short rows: one invocation computes a whole
// output row for every token, with no workgroup reduction. Below a few
// hundred columns most of matmul's 64 lanes would be idle and its six
// barrier rounds dominate (on CPU adapters a barrier is a context switch),
// so the backend picks this kernel for cols ≤ 256. Same params as matmul.

struct P {
  rows: u32,
  cols: u32,
  t: u32,
  x_off: u32,
  x_stride: u32,
  dst_off: u32,
  dst_stride: u32,
  w_base: u32,
  has_bias: u32,
  bias_off: u32,
  row0: u32,
  nx: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * p.nx) * 64u + lid;
  let t = wid.z;
  if (r >= p.rows || t >= p.t) {
    return;
  }
  let m = Mat(p.w_base, p.rows, p.cols);
  let nch = (p.cols + 31u) / 32u;
  var acc = 0.0;
  for (var ch = 0u; ch < nch; ch++) {
    load_chunk(m, r, ch);
    let c0 = ch * 32u;
    acc += chunk_dot(p.x_off + t * p.x_stride + c0, min(32u, p.cols - c0));
  }
  if (p.has_bias != 0u) {
    acc += bitcast<f32>(bias[p.bias_off + p.row0 + r]);
  }
  dst[p.dst_off + t * p.dst_stride + p.row0 + r] = acc;
}
