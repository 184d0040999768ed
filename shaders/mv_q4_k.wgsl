// matvec units of q4_k rows: two 32-element sub-blocks (eight words of
// nibbles) of one 256-element super-block, for four rows at once so that
// every quad of x loaded serves four rows. Units of 64 columns rather
// than the whole super-block keep eight lanes busy on rows of 512: each
// unit loads its super-block's d and dmin word and the one word of the
// scale bytes and of the min bytes that holds its two sub-blocks' (bytes
// 2j and 2j+1 of eight), so metadata is 3 loads per 32 of nibbles. Per
// sub-block the nibble sum is scaled by its scale byte and Σx (shared by
// the rows) by its min byte; d and dmin multiply the unit's two sums once.
// Word i of a sub-block holds elements 4i..4i+3 in its low nibbles and
// 4i+16..4i+19 in its high ones (as q4_0).
//
// With one lane per row (L = 1: CPU adapters without subgroups, short
// rows) no lanes share a row, so a unit is the whole super-block
// (sb_dot4): its d and dmin word and its two words each of scale and min
// bytes are loaded once per 32 words of nibbles rather than 3 per 8 (37
// loads per 256 weights instead of 44). On lavapipe every load at an
// offset that differs between invocations is a loop over the SIMD lanes,
// so loads, not bytes, are what a CPU adapter pays for: the whole
// super-block measured 1.1x the pair units at 512² (RATIONALE.md, "WebGPU:
// q4_k matvec by super-block with one lane per row").
fn units{{S}}(cols: u32) -> u32 {
  if (L == 1u) {
    return cols / 256u;
  }
  return cols / 64u;
}

fn q4_dot{{S}}(v: u32, xl: vec4<f32>, xh: vec4<f32>) -> f32 {
  let lo = vec4<f32>((vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(15u));
  let hi = vec4<f32>((vec4<u32>(v) >> vec4<u32>(4u, 12u, 20u, 28u)) & vec4<u32>(15u));
  return dot(lo, xl) + dot(hi, xh);
}

// w4{{S}} is word i of each of four arrays at words a.
fn w4{{S}}(a: vec4<u32>) -> vec4<u32> {
  return vec4<u32>(W[a.x], W[a.y], W[a.z], W[a.w]);
}

fn unit_dot4{{S}}(m: Mat, r: vec4<u32>, k: u32, xb: u32) -> vec4<f32> {
  if (L == 1u) {
    return sb_dot4{{S}}(m, r, k, xb);
  }
  return pair_dot4{{S}}(m, r, k, xb);
}

// sb_dot4{{S}} is super-block k of rows r dotted with x: per sub-block s
// the nibble sum times its scale byte and Σx times its min byte, then d
// and dmin once.
fn sb_dot4{{S}}(m: Mat, r: vec4<u32>, k: u32, xb: u32) -> vec4<f32> {
  let spr = m.cols / 256u;
  let n = m.rows * spr;
  let sb = r * spr + vec4<u32>(k);
  let dw = w4{{S}}(vec4<u32>(m.base) + sb);
  let sa = vec4<u32>(m.base + n) + 2u * sb;
  let ma = vec4<u32>(m.base + 3u * n) + 2u * sb;
  let s0 = w4{{S}}(sa);
  let s1 = w4{{S}}(sa + vec4<u32>(1u));
  let m0 = w4{{S}}(ma);
  let m1 = w4{{S}}(ma + vec4<u32>(1u));
  let qb = vec4<u32>(m.base + 5u * n) + 32u * sb;
  let c = xb + 256u * k;
  let m8 = vec4<u32>(0xffu);
  var asc = vec4<f32>(0.0);
  var amn = vec4<f32>(0.0);
  for (var s = 0u; s < 8u; s++) {
    var t = vec4<f32>(0.0);
    var xs = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
      let xl = x4(c + 32u * s + 4u * i);
      let xh = x4(c + 32u * s + 16u + 4u * i);
      xs += xl + xh;
      let o = 4u * s + i;
      t += vec4<f32>(q4_dot{{S}}(W[qb.x + o], xl, xh), q4_dot{{S}}(W[qb.y + o], xl, xh),
        q4_dot{{S}}(W[qb.z + o], xl, xh), q4_dot{{S}}(W[qb.w + o], xl, xh));
    }
    let sh = vec4<u32>(8u * (s % 4u));
    let hi = vec4<bool>(s >= 4u);
    asc += vec4<f32>((select(s0, s1, hi) >> sh) & m8) * t;
    amn += vec4<f32>((select(m0, m1, hi) >> sh) & m8) * dot(xs, vec4<f32>(1.0));
  }
  let d0 = unpack2x16float(dw.x);
  let d1 = unpack2x16float(dw.y);
  let d2 = unpack2x16float(dw.z);
  let d3 = unpack2x16float(dw.w);
  return vec4<f32>(d0.x, d1.x, d2.x, d3.x) * asc - vec4<f32>(d0.y, d1.y, d2.y, d3.y) * amn;
}

// pair_dot4{{S}} is unit k of rows r (sub-blocks 2j and 2j+1 of
// super-block k / 4) dotted with x.
fn pair_dot4{{S}}(m: Mat, r: vec4<u32>, k: u32, xb: u32) -> vec4<f32> {
  let spr = m.cols / 256u;
  let n = m.rows * spr;
  let sb = r * spr + vec4<u32>(k / 4u);
  let j = k % 4u; // sub-blocks 2j and 2j+1
  let dw = w4{{S}}(vec4<u32>(m.base) + sb);
  let sh = vec4<u32>(16u * (j % 2u));
  let sw = w4{{S}}(vec4<u32>(m.base + n + j / 2u) + 2u * sb) >> sh;
  let mw = w4{{S}}(vec4<u32>(m.base + 3u * n + j / 2u) + 2u * sb) >> sh;
  let qb = vec4<u32>(m.base + 5u * n + 8u * j) + 32u * sb;
  let c = xb + 64u * k;
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  var xs0 = vec4<f32>(0.0);
  var xs1 = vec4<f32>(0.0);
  for (var i = 0u; i < 4u; i++) {
    let xl = x4(c + 4u * i);
    let xh = x4(c + 16u + 4u * i);
    xs0 += xl + xh;
    s0 += vec4<f32>(q4_dot{{S}}(W[qb.x + i], xl, xh), q4_dot{{S}}(W[qb.y + i], xl, xh),
      q4_dot{{S}}(W[qb.z + i], xl, xh), q4_dot{{S}}(W[qb.w + i], xl, xh));
  }
  for (var i = 4u; i < 8u; i++) {
    let xl = x4(c + 16u + 4u * i);
    let xh = x4(c + 32u + 4u * i);
    xs1 += xl + xh;
    s1 += vec4<f32>(q4_dot{{S}}(W[qb.x + i], xl, xh), q4_dot{{S}}(W[qb.y + i], xl, xh),
      q4_dot{{S}}(W[qb.z + i], xl, xh), q4_dot{{S}}(W[qb.w + i], xl, xh));
  }
  let m8 = vec4<u32>(0xffu);
  let asc = vec4<f32>(sw & m8) * s0 + vec4<f32>((sw >> vec4<u32>(8u)) & m8) * s1;
  let amn = vec4<f32>(mw & m8) * dot(xs0, vec4<f32>(1.0)) + vec4<f32>((mw >> vec4<u32>(8u)) & m8) * dot(xs1, vec4<f32>(1.0));
  let d0 = unpack2x16float(dw.x);
  let d1 = unpack2x16float(dw.y);
  let d2 = unpack2x16float(dw.z);
  let d3 = unpack2x16float(dw.w);
  return vec4<f32>(d0.x, d1.x, d2.x, d3.x) * asc - vec4<f32>(d0.y, d1.y, d2.y, d3.y) * amn;
}

// Ragged rows (the MoE kernels): rows of a block format are whole blocks
// (tensor.Quantize refuses other widths), so there is no tail and col4 is
// never called; it exists because the kernels are written for any format.
fn unit_cols{{S}}() -> u32 { return select(64u, 256u, L == 1u); }
fn whole_units{{S}}(cols: u32) -> u32 { return units{{S}}(cols); }
fn col4{{S}}(m: Mat, r: vec4<u32>, c: u32) -> vec4<f32> { return vec4<f32>(0.0); }
