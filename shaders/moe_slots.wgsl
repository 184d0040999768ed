// moe_slots.wgsl: the routed-slot lookups and gate activations that
// moe.wgsl and moe_block.wgsl share. The including kernel declares p (with
// routes_off), routes, table and NONE.

// slot_expert is the expert of a (token, rank) slot; slot_width is its
// width, 0 for an empty slot or an expert that is not resident.
fn slot_expert(slot: u32) -> u32 {
  return routes[p.routes_off + 2u * slot];
}

fn slot_width(e: u32) -> u32 {
  if (e == NONE) {
    return 0u;
  }
  return table[8u * e + 6u];
}

// act is the expert's gate activation by table code; gelu_tanh as
// v·sigmoid(2√(2/π)(v+0.044715v³)), which equals 0.5v(1+tanh(…)).
fn act(code: u32, v: f32) -> f32 {
  if (code == 1u) {
    return v * sigmoid(1.5957691216057308 * (v + 0.044715 * (v * v * v)));
  }
  if (code == 2u) {
    let r = max(v, 0.0);
    return r * r;
  }
  return v * sigmoid(v);
}
