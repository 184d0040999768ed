// Parameters and bindings shared by the matrix kernels (matmul,
// matvec_rows, gemm): dst[t][row0 + r] = w[r] · x[t] (+ bias), for rows r
// of a matrix at word w_base, tokens t of x at x_off + t·x_stride.
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

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<u32>;
