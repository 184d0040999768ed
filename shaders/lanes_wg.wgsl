// The lanes of a matvec row group meet in workgroup memory (Spec.Subgroups
// off; lanes_sg.wgsl is the other way): each writes its partials, one
// barrier, and lane 0 adds them in lane order. The including kernel
// defines L, runs 64 invocations per workgroup, and calls lane_sum in
// uniform control flow.

var<workgroup> part: array<vec4<f32>, 128>;

// lane_slot is the invocation's place in the workgroup, which decides its
// rows and lane: its local index.
fn lane_slot(lid: u32) -> u32 {
  return lid;
}

// lane_sum adds the L lanes' partials v of the four rows of slot me's row
// group in lane order, using part's k-th half (two reductions may be in
// flight); the result is valid in the group's lane 0.
fn lane_sum(me: u32, v: vec4<f32>, k: u32) -> vec4<f32> {
  if (L == 1u) {
    return v;
  }
  part[k * 64u + me] = v;
  workgroupBarrier();
  var s = vec4<f32>(0.0);
  if (me % L == 0u) {
    s = part[k * 64u + me];
    for (var i = 1u; i < L; i++) {
      s += part[k * 64u + me + i];
    }
  }
  return s;
}
