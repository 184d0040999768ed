//#include common

// gpt-oss's routed experts (GptOssExperts.forward in HF
// modeling_gpt_oss.py), between moe.wgsl's passes: moe_act takes moe_gu's
// raw gate and up values of each (token, rank) slot, adds the slot's
// expert's biases and applies the layer's activation into g: SwiGLU
// silu(gate)·up, or (act 1) the clamped variant, gate clamped above at
// limit, up to ±limit, (up + 1)·gate·σ(alpha·gate). moe_bias adds the
// expert's down bias to the slot's output y before moe_combine weights
// it. Slots with no expert (0xffffffff) are skipped.

struct P {
  tk: u32,        // slots: tokens × K
  maxw: u32,      // g and u row stride
  d: u32,         // y row stride and down-bias width
  has_bias: u32,
  gb_off: u32,    // gate biases [experts, bw] at gb_off in gb
  ub_off: u32,    // up biases, the same shape, in ub
  bw: u32,        // bias row width (every expert's width)
  act: u32,       // 0 SwiGLU, 1 clamped
  alpha: u32,     // f32 bits
  limit: u32,     // f32 bits
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> routes: array<u32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> u: array<f32>;
@group(0) @binding(4) var<storage, read_write> gb: array<f32>;
@group(0) @binding(5) var<storage, read_write> ub: array<f32>;

@compute @workgroup_size(64)
fn moe_act(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let slot = gid.y;
  let e = routes[2u * slot];
  if (e == NONE || i >= p.bw) {
    return;
  }
  let a = slot * p.maxw + i;
  var gv = g[a];
  var uv = u[a];
  if (p.has_bias != 0u) {
    gv += gb[p.gb_off + e * p.bw + i];
    uv += ub[p.ub_off + e * p.bw + i];
  }
  if (p.act == 1u) {
    let lim = bitcast<f32>(p.limit);
    gv = min(gv, lim);
    uv = clamp(uv, -lim, lim);
    g[a] = (uv + 1.0) * (gv * sigmoid(bitcast<f32>(p.alpha) * gv));
  } else {
    g[a] = (gv * sigmoid(gv)) * uv;
  }
}

// moe_bias: y[slot] += down bias of the slot's expert (gb holds them,
// [experts, d] at gb_off).
@compute @workgroup_size(64)
fn moe_bias(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  let slot = gid.y;
  let e = routes[2u * slot];
  if (e == NONE || j >= p.d) {
    return;
  }
  u[slot * p.d + j] += gb[p.gb_off + e * p.d + j];
}
