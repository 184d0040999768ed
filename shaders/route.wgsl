//#include common

// route turns one token's router logits into its top-K experts in one
// invocation: softmax or sigmoid scores, optional selection bias (used to
// choose, not to weight), top-K with ties to the lower index, optional
// renormalisation and scaling, as runtime/routing.Select; with groups > 1
// only the experts of the topk_groups best of groups equal groups are
// candidates, a group scoring its best selection score or (top2) the sum
// of its two best, as routing.LimitGroups (DeepSeek). Output per token:
// K pairs (expert, weight bits). E and K are specialised into the text.

struct P {
  t: u32,
  logits_off: u32,
  logits_stride: u32,
  sigmoid: u32,
  has_bias: u32,
  bias_off: u32,
  norm: u32,
  route_scale: u32, // f32 bits
  routes_off: u32,
  groups: u32,
  topk_groups: u32,
  top2: u32,
}

const E: u32 = {{E}}u;
const K: u32 = {{K}}u;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<u32>;
@group(0) @binding(3) var<storage, read_write> routes: array<u32>;

//#include route_pick

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x;
  if (t >= p.t) {
    return;
  }
  route_token(t);
}
