// moe_io.wgsl: what moe.wgsl (moe_gu) and moe_down.wgsl (moe_down,
// moe_down_sum) share: the uniform, the bindings, and the matvec tiling.
// See moe.wgsl for the expert table and the routes.
//
// The matrix kernels have matvec.wgsl's structure: a workgroup of 64
// invocations owns TILE = 4·64/L rows of one slot's matrix (one token's
// for moe_down_sum), L lanes share a group of four rows (RW apart) and read
// them in the units of the mv_* include (lane i taking units i, i+L, ...),
// each quad of the input serving the four rows; the L partial sums meet in
// workgroup memory behind one barrier. L is specialised ({{L}}): MoELanes
// on GPUs, 1 on a CPU adapter without subgroups, where neighbouring
// invocations (SIMD lanes) then load the same input quad and there is no
// barrier for the sums (see matvec.wgsl and RATIONALE.md, "one lane per
// row"). One dispatch covers every slot ×
// row tile; the slot's expert comes from the router's output on the
// device. Rows whose width is not a whole number of units (f32 and f16
// only) finish with col4, one column per lane at a time.
//
// Each entry point adds z = wid.z >> 31 (always 0) to the uniforms its
// branches and loop bounds test, so that lavapipe does not re-specialise
// the shader on them at every dispatch (see matvec.wgsl's store).

struct P {
  t: u32,
  k: u32,
  d: u32,
  x_off: u32,
  x_stride: u32,
  routes_off: u32,
  maxw: u32,
  key: u32,
  nx: u32,
  // swiglu: every slot's gate and up have this key, so moe_gu writes
  // act(gate·x)·(up·x) to g itself (ffn.wgsl's swiglu arithmetic for silu)
  // and the activation dispatch is skipped.
  swiglu: u32,
  // moe_down_sum's combine: as moe_combine.wgsl's fields of these names.
  dst_off: u32,
  dst_stride: u32,
  init: u32,
  add_res: u32,
  res_off: u32,
  res_stride: u32,
  x_slot: u32, // moe_gu: x holds one row per slot (x_stride apart from x_off)
  accum: u32,  // moe_down: add to u instead of writing it (a later block)
  eps: u32,    // moe_block.wgsl's moe_norm: f32 bits
}

const NONE: u32 = 0xffffffffu;
const L: u32 = {{L}}u;       // lanes per row group (Spec.L: shaders.MoELanes or 1)
const RW: u32 = 64u / L;    // row groups per workgroup
const TILE: u32 = 4u * RW;  // rows per workgroup (shaders.MoETileRows)

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> routes: array<u32>;
// Spec.XU: moe_gu's x (moe_down's g) is a uniform array<vec4<f32>, XU>
// instead (moe_in_u.wgsl).
@group(0) @binding(4) {{MX}};
@group(0) @binding(5) {{MG}};
@group(0) @binding(6) var<storage, read_write> u: array<f32>;
@group(0) @binding(7) var<storage, read_write> res: array<f32>;

var<workgroup> part: array<vec4<f32>, 128>;
var<workgroup> work: u32;

// rows4 is the four rows of the row group whose first row is r0.
fn rows4(r0: u32) -> vec4<u32> {
  return vec4<u32>(r0) + vec4<u32>(0u, RW, 2u * RW, 3u * RW);
}

// reduce sums the L lanes' partials of each of the four rows in lane
// order; the result is valid in lane 0. Called in uniform control flow;
// two calls in a row need different slots.
fn reduce(lid: u32, v: vec4<f32>, slot: u32) -> vec4<f32> {
  if (L == 1u) {
    return v;
  }
  part[slot * 64u + lid] = v;
  workgroupBarrier();
  var s = vec4<f32>(0.0);
  if (lid % L == 0u) {
    s = part[slot * 64u + lid];
    for (var i = 1u; i < L; i++) {
      s += part[slot * 64u + lid + i];
    }
  }
  return s;
}
