//#include common
//#include weights
//#include format
//#include dot

// matvec_rows is matmul for short rows: one invocation computes a whole
// output row for every token, with no workgroup reduction. Below a few
// hundred columns most of matmul's 64 lanes would be idle and its six
// barrier rounds dominate (on CPU adapters a barrier is a context switch),
// so the backend picks this kernel for cols ≤ 256. Same params as matmul.

//#include matrix_io


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
