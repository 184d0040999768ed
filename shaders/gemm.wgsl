//#include common
//#include weights
//#include format
//#include tile

// gemm is the prefill matmul with workgroup memory: dst[t][row0+r] =
// W[r]·x[t] (+ bias) for the rows of one page of W, a tile of TM = 64 rows
// by TN = 32 tokens per workgroup of 64 invocations. For each 32-column
// chunk every invocation stages one row of the tile's weights (dequantised
// once for all 32 tokens) and 16 values of the tokens' x in workgroup
// memory; after a barrier each invocation accumulates an RM×RN = 8×4 block
// of outputs in registers (rows ty + 8i, tokens tx + 8j for ty, tx =
// lid / 8, lid % 8), reading each staged weight for 4 tokens and each
// staged x for 8 rows. That is two barriers per chunk for 2048 outputs,
// where matmul spends seven barrier rounds on 8 outputs. The tile include is
// the f32 path (tile_f32) or, for f16 weights on devices with shader-f16,
// f16 arithmetic (tile_f16). Params and bindings: matrix_io, as matmul.

//#include matrix_io

const TM: u32 = 64u;
const TN: u32 = 32u;
const RM: u32 = 8u;
const RN: u32 = 4u;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r0 = (wid.x + wid.y * p.nx) * TM;
  if (r0 >= p.rows) {
    return; // uniform: the whole workgroup leaves
  }
  let t0 = wid.z * TN;
  let m = Mat(p.w_base, p.rows, p.cols);
  let ty = lid / 8u;
  let tx = lid % 8u;
  var acc: array<f32, 32>; // RM * RN
  let nch = (p.cols + 31u) / 32u;
  for (var ch = 0u; ch < nch; ch++) {
    stage(m, r0, t0, ch, lid);
    workgroupBarrier();
    tile_mac(&acc, ty, tx);
    workgroupBarrier();
  }
  for (var i = 0u; i < RM; i++) {
    let r = r0 + ty + 8u * i;
    if (r < p.rows) {
      var b = 0.0;
      if (p.has_bias != 0u) {
        b = bitcast<f32>(bias[p.bias_off + p.row0 + r]);
      }
      for (var j = 0u; j < RN; j++) {
        let t = t0 + tx + 8u * j;
        if (t < p.t) {
          dst[p.dst_off + t * p.dst_stride + p.row0 + r] = acc[i * RN + j] + b;
        }
      }
    }
  }
}
