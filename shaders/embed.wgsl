//#include common
//#include weights
//#include format

// embed gathers rows of a weight table: dst row i = table row ids[i].
// One invocation dequantises one 32-element chunk of one row. Ids outside
// [row0, row0+rows) belong to another page of the table and are skipped.

struct P {
  n: u32,        // ids
  cols: u32,
  rows: u32,     // rows of this page of the table
  row0: u32,     // first table row in this page
  w_base: u32,
  ids_off: u32,  // word offset of the ids in ids
  dst_off: u32,
  dst_stride: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let ch = gid.x;
  let i = gid.y;
  if (i >= p.n || ch * 32u >= p.cols) {
    return;
  }
  let id = ids[p.ids_off + i];
  if (id < p.row0 || id - p.row0 >= p.rows) {
    return;
  }
  var v = w_chunk(Mat(p.w_base, p.rows, p.cols), id - p.row0, ch);
  let o = p.dst_off + i * p.dst_stride + ch * 32u;
  let n = min(32u, p.cols - ch * 32u);
  for (var j = 0u; j < n; j++) {
    dst[o + j] = v[j];
  }
}
