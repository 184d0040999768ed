//#include common
//#include weights
//#include mv
//#include moe_io
//#include moe_slots

// The down projections of routed experts (see moe.wgsl for the table and
// the routes, moe_io.wgsl for the tiling). The input rows are g's, one per
// slot (maxw apart): the activated gate·up rows moe.wgsl's moe_gu (and the
// activation step) left there.
//
// moe_down: writes y[slot][j] = down_j·g[slot] (y bound as u, D values
// per slot), or adds to it with accum, for the slots whose down matrix
// has p.key.
//
// moe_down_sum is moe_down and moe_combine in one dispatch, for a layer
// whose resident experts' down matrices all have p.key (the backend
// gathers a layer's experts into one page): a workgroup owns a tile of
// output columns of token t; each lane adds, for each of the token's slots
// in rank order, weight·(its partial of the slot's rows), and the lanes'
// sums then meet once; lane 0 adds that to dst's value as moe_combine does
// (from 0 when p.init; into res too when p.add_res). dst is bound as u.

// x4 and x1 read g (moe_in_s.wgsl, or with Spec.XU moe_in_u.wgsl).
//#include moe_in

// down_part is this lane's partial of rows rc of slot's down matrix (the
// expert e of width width) times g[slot].
fn down_part(e: u32, width: u32, slot: u32, rc: vec4<u32>, lane: u32) -> vec4<f32> {
  let dm = Mat(table[8u * e + 5u], p.d, width);
  let xb = slot * p.maxw;
  var s = vec4<f32>(0.0);
  let n = whole_units(width);
  for (var k = lane; k < n; k += L) {
    s += unit_dot4(dm, rc, k, xb);
  }
  for (var c = n * unit_cols() + lane; c < width; c += L) {
    s += col4(dm, rc, c) * x1(xb + c);
  }
  return s;
}

@compute @workgroup_size(64)
fn moe_down(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * p.nx;
  let slot = wid.z;
  let z = wid.z >> 31u; // 0, see moe_io.wgsl
  let e = slot_expert(slot);
  let width = slot_width(e);
  if (lid == 0u) {
    work = select(0u, 1u, tile * TILE < p.d && width > 0u && table[8u * e + 4u] == p.key);
  }
  if (workgroupUniformLoad(&work) == 0u) {
    return;
  }
  let lane = lid % L;
  let rv = rows4(tile * TILE + lid / L);
  var s = vec4<f32>(0.0);
  if (rv.x < p.d) {
    s = down_part(e, width, slot, min(rv, vec4<u32>(p.d - 1u)), lane);
  }
  s = reduce(lid, s, 0u);
  if (lane != 0u) {
    return;
  }
  for (var i = 0u; i < 4u; i++) {
    if (rv[i] >= p.d) {
      break;
    }
    let o = slot * p.d + rv[i];
    if (p.accum + z != 0u) {
      u[o] = u[o] + s[i];
    } else {
      u[o] = s[i];
    }
  }
}

@compute @workgroup_size(64)
fn moe_down_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * p.nx;
  let t = wid.z;
  let z = wid.z >> 31u; // 0, see moe_io.wgsl
  if (tile * TILE >= p.d) {
    return;
  }
  let lane = lid % L;
  let rv = rows4(tile * TILE + lid / L);
  var s = vec4<f32>(0.0);
  if (rv.x < p.d) {
    let rc = min(rv, vec4<u32>(p.d - 1u));
    for (var k = 0u; k < p.k + z; k++) {
      let slot = t * p.k + k;
      let e = slot_expert(slot);
      let width = slot_width(e);
      if (width > 0u) {
        s += bitcast<f32>(routes[p.routes_off + 2u * slot + 1u]) * down_part(e, width, slot, rc, lane);
      }
    }
  }
  s = reduce(lid, s, 0u);
  if (lane != 0u) {
    return;
  }
  for (var i = 0u; i < 4u; i++) {
    if (rv[i] >= p.d) {
      break;
    }
    let o = p.dst_off + t * p.dst_stride + rv[i];
    var acc = s[i];
    if (p.init + z == 0u) {
      acc = u[o] + acc;
    }
    u[o] = acc;
    if (p.add_res + z != 0u) {
      let ro = p.res_off + t * p.res_stride + rv[i];
      res[ro] = res[ro] + acc;
    }
  }
}
