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
// f16 arithmetic (tile_f16). Same params and bindings as matmul.

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
  nx: u32,       // row tiles along x; they wrap onto y past it
}

const TM: u32 = 64u;
const TN: u32 = 32u;
const RM: u32 = 8u;
const RN: u32 = 4u;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<u32>;

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
