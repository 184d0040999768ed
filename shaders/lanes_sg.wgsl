// The lanes of a matvec row group meet through subgroup shuffles
// (Spec.Subgroups; the text starts with `enable subgroups;`): no
// workgroup memory and no barrier. lane_sum is a butterfly of
// subgroupShuffleXor over log2(L) steps, so the L lanes of a group (slots
// me with the same me / L, me the local index) must be in one subgroup at
// subgroup_invocation_ids that differ as their local indices do. WebGPU
// does not promise that mapping; SwiftShader lays a 1-D workgroup out that
// way (local index i is subgroup_invocation_id i % 4), as GPU drivers
// commonly do, and with every subgroup at least L wide (the backend uses
// Subgroups only for L up to the adapter's smallest subgroup size) an
// L-aligned run of local indices then never straddles two subgroups. The
// butterfly checks it as it goes: each step also shuffles the slot and,
// where the partner is not slot ^ m, the sum becomes 1e38 (not NaN, which
// WGSL lets a compiler assume away), so a device that maps otherwise gives
// results every test and the engine's outputs show as wrong rather than
// plausibly wrong sums. (Slots handed out per subgroup from a workgroup
// atomic would not need the mapping, but SwiftShader returned 0 to every
// subgroup's atomicAdd in a kernel with no barrier, so that could not be
// tested where subgroups run here.)

// lane_slot is the invocation's place in the workgroup, which decides its
// rows and lane: its local index, as lanes_wg.wgsl's.
fn lane_slot(lid: u32, sg_i: u32, sg_n: u32) -> u32 {
  return lid;
}

// lane_sum adds the L lanes' partials v of the four rows of slot me's row
// group (k is lanes_wg.wgsl's and unused here); every lane of the group
// gets the sum, lane 0 the one that is stored. Call in uniform control
// flow.
fn lane_sum(me: u32, v: vec4<f32>, k: u32) -> vec4<f32> {
  var s = v;
  var ok = true;
  for (var m = L / 2u; m > 0u; m >>= 1u) {
    s += subgroupShuffleXor(s, m);
    ok = ok & (subgroupShuffleXor(me, m) == (me ^ m)); // & (no short circuit): uniform control flow
  }
  return select(vec4<f32>(1e38), s, ok);
}
