//#include common
//#include weights
//#include mv
//#include moe_io
//#include moe_slots

// Routed experts of one layer. An expert's gate, up and down matrices lie
// wherever the backend put them: in a page of the expert pool shared by all
// layers, or in a weight buffer of their own. table holds 8 words per
// expert: gate key, gate base, up key, up base, down key, down base, width
// (0: not resident), activation (0 silu, 1 gelu_tanh, 2 relu2). A deeper
// expert's later blocks have tables of their own in the same layout (width
// 0 where an expert has no such block); see moe_block.wgsl. A key is (buffer id << 3) | format code: one
// dispatch binds one buffer as w, is specialised to one format, and works
// only on the matrices whose key equals p.key, so a layer's experts may be
// spread over several bindings and formats (one dispatch per key). routes
// holds K (expert, weight bits) pairs per token; expert 0xffffffff is an
// empty slot.
//
// moe_gu computes g[slot][i] = gate_i·x and u[slot][i] = up_i·x for each
// (token, rank) slot (x is the slot's token's row, or with x_slot the
// slot's own row: a later block's input); the backend then applies the
// gated activation (g = act(g)·u: ffn.wgsl's swiglu when every expert is
// silu, else moe_block.wgsl's moe_act) and moe_down.wgsl's moe_down
// computes y[slot][j] = down_j·g[slot]; moe_combine.wgsl adds the slots to
// dst in rank order. A workgroup owns one row tile of one slot (see
// moe_io.wgsl): whether this dispatch has work there is the same for all
// its invocations, and workgroupUniformLoad lets the compiler see that, so
// idle workgroups return before the reduction's barrier.

// x4 and x1 read x (moe_in_s.wgsl, or with Spec.XU moe_in_u.wgsl).
//#include moe_in

@compute @workgroup_size(64)
fn moe_gu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * p.nx;
  let slot = wid.z;
  let z = wid.z >> 31u; // 0, see moe_io.wgsl
  let e = slot_expert(slot);
  let width = slot_width(e);
  if (lid == 0u) {
    var m = 0u;
    if (tile * TILE < width) {
      m = select(0u, 1u, table[8u * e] == p.key) | select(0u, 2u, table[8u * e + 2u] == p.key);
    }
    work = m;
  }
  let mask = workgroupUniformLoad(&work);
  if (mask == 0u) {
    return;
  }
  let lane = lid % L;
  let rv = rows4(tile * TILE + lid / L);
  let rc = min(rv, vec4<u32>(width - 1u));
  var xrow = slot / p.k;
  if (p.x_slot + z != 0u) {
    xrow = slot;
  }
  let xb = p.x_off + xrow * p.x_stride;
  let gm = Mat(table[8u * e + 1u], width, p.d);
  let um = Mat(table[8u * e + 3u], width, p.d);
  var gs = vec4<f32>(0.0);
  var us = vec4<f32>(0.0);
  if (rv.x < width) {
    let n = whole_units(p.d) + z;
    for (var k = lane; k < n; k += L) {
      if ((mask & 1u) != 0u) {
        gs += unit_dot4(gm, rc, k, xb);
      }
      if ((mask & 2u) != 0u) {
        us += unit_dot4(um, rc, k, xb);
      }
    }
    for (var c = n * unit_cols() + lane; c < p.d + z; c += L) {
      let xv = x1(xb + c);
      if ((mask & 1u) != 0u) {
        gs += col4(gm, rc, c) * xv;
      }
      if ((mask & 2u) != 0u) {
        us += col4(um, rc, c) * xv;
      }
    }
  }
  gs = reduce(lid, gs, 0u);
  us = reduce(lid, us, 1u);
  if (lane != 0u) {
    return;
  }
  let code = table[8u * e + 7u];
  for (var i = 0u; i < 4u; i++) {
    if (rv[i] >= width) {
      break;
    }
    let o = slot * p.maxw + rv[i];
    if (p.swiglu + z != 0u) {
      g[o] = act(code, gs[i]) * us[i];
      continue;
    }
    if ((mask & 1u) != 0u) {
      g[o] = gs[i];
    }
    if ((mask & 2u) != 0u) {
      u[o] = us[i];
    }
  }
}
