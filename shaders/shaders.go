package shaders

import (
	"embed"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/moderuntime/mode/runtime/tensor"
)

//go:embed *.wgsl
var files embed.FS

// Access is how a kernel binds one buffer.
type Access uint8

const (
	Uniform   Access = iota // the params struct
	Read                    // read-only storage: weights, ids, tables
	ReadWrite               // read-write storage: activations (which may alias)
)

// Kernel describes one compute entry point. Binding i of group 0 has
// access Bindings[i]; binding 0 is always the params uniform.
type Kernel struct {
	File     string
	Entry    string
	Bindings []Access
	// Format says the kernel reads a weight matrix whose format the Spec
	// selects.
	Format bool
}

// The kernels.
var (
	Embed       = Kernel{File: "embed.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, Read, ReadWrite}, Format: true}
	MatMul      = Kernel{File: "matmul.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read}, Format: true}
	MatVecRows  = Kernel{File: "matvec_rows.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read}, Format: true}
	MatVec      = Kernel{File: "matvec.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read, ReadWrite, Read}, Format: true}
	MatVecGU    = Kernel{File: "matvec.wgsl", Entry: "gate_up", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read, ReadWrite, Read}, Format: true}
	MatVecMulti = Kernel{File: "matvec_multi.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read, Read, ReadWrite, ReadWrite}, Format: true}
	// The same three with an RMSNorm on the way in (Spec.Norm): the norm's
	// weight in binding 7 (8 for MatVecMultiNorm) and, but for
	// MatVecMultiNorm, the normalised row written to binding 8.
	MatVecNorm      = Kernel{File: "matvec.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read, ReadWrite, Read, Read, ReadWrite}, Format: true}
	MatVecGUNorm    = Kernel{File: "matvec.wgsl", Entry: "gate_up", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read, ReadWrite, Read, Read, ReadWrite}, Format: true}
	MatVecMultiNorm = Kernel{File: "matvec_multi.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read, Read, ReadWrite, ReadWrite, Read}, Format: true}
	// MatVecArgmax (and with Spec.Norm, MatVecArgmaxNorm): main over every
	// row in one workgroup and the index of the largest result, as an f32,
	// in res (binding 5); one workgroup whatever the rows.
	MatVecArgmax     = Kernel{File: "matvec.wgsl", Entry: "head_argmax", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read, ReadWrite, Read}, Format: true}
	MatVecArgmaxNorm = Kernel{File: "matvec.wgsl", Entry: "head_argmax", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read, ReadWrite, Read, Read, ReadWrite}, Format: true}
	// RouterRoute (RouterRouteNorm with Spec.Norm): a decode token's router
	// product and route in one workgroup (router.wgsl).
	RouterRoute     = Kernel{File: "router.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read, ReadWrite}, Format: true}
	RouterRouteNorm = Kernel{File: "router.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read, ReadWrite, Read, ReadWrite}, Format: true}
	RoPEStore       = Kernel{File: "kvstore.wgsl", Entry: "rope_store", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	KVStore         = Kernel{File: "kvstore.wgsl", Entry: "store", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	GEMM            = Kernel{File: "gemm.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read}, Format: true}
	RMSNorm         = Kernel{File: "rmsnorm.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite}}
	RMSNormIP       = Kernel{File: "rmsnorm.wgsl", Entry: "in_place", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite}}
	RMSNormIP2      = Kernel{File: "rmsnorm.wgsl", Entry: "in_place2", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read, ReadWrite}}
	RoPE            = Kernel{File: "rope.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite}}
	Copy            = Kernel{File: "copy.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
	PackF16         = Kernel{File: "pack_f16.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
	Add             = Kernel{File: "add.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
	Scale           = Kernel{File: "scale.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite}}
	AttnPartial     = Kernel{File: "attention.wgsl", Entry: "attn_partial", Bindings: []Access{Uniform, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	AttnSingle      = Kernel{File: "attention.wgsl", Entry: "attn_single", Bindings: []Access{Uniform, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	AttnRoPE        = Kernel{File: "attn_rope.wgsl", Entry: "attn_rope", Bindings: []Access{Uniform, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite, Read}}
	Layer           = Kernel{File: "layer.wgsl", Entry: "layer", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, ReadWrite, Read}}
	AttnReduce      = Kernel{File: "attention.wgsl", Entry: "attn_reduce", Bindings: []Access{Uniform, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	Route           = Kernel{File: "route.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, Read, ReadWrite}}
	MLAAttn         = Kernel{File: "mla_attn.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	MoEGateUp       = Kernel{File: "moe.wgsl", Entry: "moe_gu", Bindings: []Access{Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}, Format: true}
	MoEDown         = Kernel{File: "moe_down.wgsl", Entry: "moe_down", Bindings: []Access{Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}, Format: true}
	MoEDownSum      = Kernel{File: "moe_down.wgsl", Entry: "moe_down_sum", Bindings: []Access{Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}, Format: true}
	MoEBlockAct     = Kernel{File: "moe_block.wgsl", Entry: "moe_act", Bindings: []Access{Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	MoENorm         = Kernel{File: "moe_block.wgsl", Entry: "moe_norm", Bindings: []Access{Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	MoECombine      = Kernel{File: "moe_combine.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	SwiGLU          = Kernel{File: "ffn.wgsl", Entry: "swiglu", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
	MoEAct          = Kernel{File: "moe_act.wgsl", Entry: "moe_act", Bindings: []Access{Uniform, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	MoEBias         = Kernel{File: "moe_act.wgsl", Entry: "moe_bias", Bindings: []Access{Uniform, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	Accum           = Kernel{File: "ffn.wgsl", Entry: "accum", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
	Argmax          = Kernel{File: "argmax.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
	Sample          = Kernel{File: "sample.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
)

// Spec is what a kernel's text is specialised on. Fields a kernel does not
// use are ignored (and should be left zero so that its pipelines are shared).
type Spec struct {
	Format tensor.DType // weight format of Format kernels
	TT     int          // MatMul: tokens per workgroup (1 for decode)
	E, K   int          // Route: experts and experts chosen per token; Sample: K = TopK
	// KVF16: attention reads a KV cache of packed f16 pairs (kv_f16.wgsl)
	// instead of f32 values (kv_f32.wgsl).
	KVF16 bool
	// F16: f16 arithmetic for f16 weights (dot_f16.wgsl, tile_f16.wgsl
	// instead of dot_f32.wgsl, tile_f32.wgsl) in MatMul, MatVecRows and
	// GEMM. The text then starts with `enable f16;`, which compiles only on
	// a device created with the shader-f16 feature; Format must be F16.
	F16 bool
	// L: MatVec lanes per row, a power of two from 1 to 64; for the MoE
	// matrix kernels (MoEGateUp, MoEDown, MoEDownSum) MoELanes or 1.
	L int
	// Norm: MatVec, MatVecGU and MatVecMulti read x through an RMSNorm
	// (xn_on.wgsl instead of xn_off.wgsl); use the *Norm kernels, whose
	// bindings include the norm's.
	Norm bool
	// Subgroups: the lanes of a MatVec, MatVecGU or MatVecMulti row group
	// add their partials with subgroup shuffles instead of in workgroup
	// memory behind a barrier (lanes_sg.wgsl instead of lanes_wg.wgsl).
	// The text then starts with `enable subgroups;`, which compiles only
	// on a device created with the subgroups feature, and every subgroup
	// the device runs must have at least L invocations.
	Subgroups bool
	// XU: matvec.wgsl reads x from a uniform binding of XU vec4s (binding
	// 2, Uniform in Access) instead of a read-write storage array; so do
	// MoEGateUp its x (binding 4) and MoEDown and MoEDownSum their input g
	// (binding 5). With
	// one lane per row on a CPU adapter every invocation loads the same x
	// quad; lavapipe runs a storage load as a loop over the SIMD lanes
	// even then, a uniform load at a uniform offset as one load (see
	// RATIONALE.md, "WebGPU: q4_k matvec by super-block with one lane per
	// row"). At most MaxXU.
	XU int
}

// MaxXU is the most vec4s of x a uniform binding holds: WebGPU's default
// maxUniformBufferBindingSize, 64 KiB.
const MaxXU = 4096

// Access is k's bindings specialised by s: Bindings, with x's (binding 2
// of matvec.wgsl; the MoE matrix kernels' input, binding 4 of moe_gu and
// 5 of moe_down and moe_down_sum) a uniform when s.XU is set.
func (k Kernel) Access(s Spec) []Access {
	i := k.xBinding()
	if s.XU == 0 || i == 0 {
		return k.Bindings
	}
	a := slices.Clone(k.Bindings)
	a[i] = Uniform
	return a
}

// xBinding is the binding Spec.XU makes a uniform in k, 0 if none.
func (k Kernel) xBinding() int {
	switch k.File {
	case MatVec.File:
		return 2
	case MoEGateUp.File:
		return 4
	case MoEDown.File:
		return 5
	}
	return 0
}

// Key identifies the pipeline of k specialised by s.
func (k Kernel) Key(s Spec) string {
	key := k.File + ":" + k.Entry
	if k.Format {
		key += "/" + s.Format.String()
	}
	key = fmt.Sprintf("%s/%d/%d/%d", key, s.TT, s.E, s.K)
	if s.L != 0 {
		key += fmt.Sprintf("/L%d", s.L)
	}
	if s.XU != 0 {
		key += fmt.Sprintf("/xu%d", s.XU)
	}
	if s.KVF16 {
		key += "/kvf16"
	}
	if s.F16 {
		key += "/f16arith"
	}
	if s.Norm {
		key += "/norm"
	}
	if s.Subgroups {
		key += "/sg"
	}
	return key
}

// MatVecLanes are the lanes per row the backends run MatVec with: 1 for
// short rows and on CPU adapters, MatVecWide for the others.
var MatVecLanes = []int{1, MatVecWide}

// MatVecWide is MatVec's lanes per row of more than 256 columns on a GPU.
const MatVecWide = 8

// MatVecSubgroupLanes are the lanes per row the backends run MatVec with
// when its lanes meet through subgroups (Spec.Subgroups): MatVecWide, or
// fewer where the adapter's smallest subgroup is narrower (SwiftShader's
// are 4 wide; WebGPU allows no subgroup below 4).
var MatVecSubgroupLanes = []int{4, MatVecWide}

// MatVecGroupRows is the rows one workgroup of k (MatVec, MatVecGU or
// MatVecMulti) with l lanes per row computes: each lane takes four rows.
func MatVecGroupRows(k Kernel, l int) int {
	return 4 * 64 / l
}

// MatVecMultiGroups is the workgroups of a MatVecMulti dispatch with l lanes
// per row over matrices of rows[i] rows: each matrix starts a workgroup.
func MatVecMultiGroups(rows [3]uint32, l int) int {
	per := uint32(MatVecGroupRows(MatVecMulti, l))
	n := 0
	for _, r := range rows {
		n += int((r + per - 1) / per)
	}
	return n
}

// MoETileRows is the rows one workgroup of MoEGateUp, MoEDown or
// MoEDownSum with l lanes per row (Spec.L) computes (moe_io.wgsl's TILE:
// four rows per group of l lanes).
func MoETileRows(l int) int { return 4 * 64 / max(l, 1) }

// MoELanes is the lanes the MoE matrix kernels give a row group on a GPU
// (or where lanes meet through subgroups); a CPU adapter without
// subgroups runs them with one (Spec.L = 1), as matvec.
const MoELanes = 8

// MoETiles is the workgroups (before Grid) an MoE matrix kernel with l
// lanes per row needs per slot (per token for MoEDownSum) over rows rows.
func MoETiles(rows, l int) int { return (rows + MoETileRows(l) - 1) / MoETileRows(l) }

// MatVecUnit is the columns of one matvec unit of format d: a row's width
// must be a multiple of it (and its words a whole number, which the block
// formats' widths always are).
func MatVecUnit(d tensor.DType) int {
	switch d {
	case tensor.F32:
		return 4
	case tensor.F16:
		return 8
	case tensor.Q4_K:
		return 256
	}
	return 32
}

// Formats are the weight formats the kernels read.
var Formats = []tensor.DType{tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K, tensor.MXFP4}

// Source returns the WGSL text of k specialised by s.
func Source(k Kernel, s Spec) (string, error) {
	text, err := files.ReadFile(k.File)
	if err != nil {
		return "", fmt.Errorf("shaders: %w", err)
	}
	if s.F16 && s.Format != tensor.F16 {
		return "", fmt.Errorf("shaders: %s: f16 arithmetic is for f16 weights, not %v", k.File, s.Format)
	}
	var b strings.Builder
	if s.F16 {
		b.WriteString("enable f16;\n")
	}
	if s.Subgroups {
		b.WriteString("enable subgroups;\n")
	}
	arith := false // whether an include has an f16-arithmetic variant
	lanes := false // whether the kernel includes lanes (has a subgroup variant)
	for line := range strings.Lines(string(text)) {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "//#include ")
		if !ok {
			b.WriteString(line)
			continue
		}
		file := name + ".wgsl"
		if name == "kv" {
			file = "kv_f32.wgsl"
			if s.KVF16 {
				file = "kv_f16.wgsl"
			}
		}
		if name == "lanes" {
			lanes = true
			file = "lanes_wg.wgsl"
			if s.Subgroups {
				file = "lanes_sg.wgsl"
			}
		}
		if name == "moe_in" {
			// The MoE matrix kernels' input: x for moe_gu, g for moe_down.
			f := "moe_in_s.wgsl"
			if s.XU != 0 {
				f = "moe_in_u.wgsl"
			}
			inc, err := files.ReadFile(f)
			if err != nil {
				return "", fmt.Errorf("shaders: %s: %w", k.File, err)
			}
			in := "x["
			if k.File == MoEDown.File {
				in = "g["
			}
			b.WriteString(strings.ReplaceAll(string(inc), "IN[", in))
			b.WriteString("\n")
			continue
		}
		if name == "xnorm" {
			file = "xn_off.wgsl"
			if s.Norm {
				file = "xn_on.wgsl"
			}
		}
		if name == "dot" || name == "tile" {
			arith = true
			file = name + "_f32.wgsl"
			if s.F16 {
				file = name + "_f16.wgsl"
			}
		}
		if name == "mv" {
			f := formatFile(s.Format)
			if !k.Format || f == "" {
				return "", fmt.Errorf("shaders: %s: no matvec units for weight format %v", k.File, s.Format)
			}
			inc, err := files.ReadFile("mv_" + strings.TrimPrefix(f, "fmt_"))
			if err != nil {
				return "", fmt.Errorf("shaders: %s: %w", k.File, err)
			}
			// Once for w and once per other weight array the kernel
			// declares (w2, w3): WGSL
			// cannot pass a storage array to a function, so each matrix
			// gets its own copy.
			for _, a := range []string{"w", "w2", "w3"} {
				if a != "w" && !strings.Contains(string(text), "var<storage, read> "+a+": array<u32>;") {
					continue
				}
				b.WriteString(strings.NewReplacer("{{S}}", strings.TrimPrefix(a, "w"), "W[", a+"[").Replace(string(inc)))
				b.WriteString("\n")
			}
			continue
		}
		if name == "format" {
			if !k.Format {
				return "", fmt.Errorf("shaders: %s includes a format but is not marked Format", k.File)
			}
			if file = formatFile(s.Format); file == "" {
				return "", fmt.Errorf("shaders: %s: no kernel for weight format %v", k.File, s.Format)
			}
		}
		inc, err := files.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("shaders: %s: %w", k.File, err)
		}
		b.Write(inc)
		b.WriteString("\n")
	}
	if s.F16 && !arith {
		return "", fmt.Errorf("shaders: %s has no f16-arithmetic variant", k.File)
	}
	if s.Subgroups && !lanes {
		return "", fmt.Errorf("shaders: %s has no subgroup variant", k.File)
	}
	tt := max(s.TT, 1)
	if tt > 8 {
		return "", fmt.Errorf("shaders: %d tokens per workgroup; at most 8", tt)
	}
	l := max(s.L, 1)
	if l > 64 || l&(l-1) != 0 {
		return "", fmt.Errorf("shaders: %d lanes per row; a power of two up to 64", l)
	}
	// The subgroup builtins exist only under `enable subgroups;`, so the
	// entry points that include lanes name them through these two.
	sgIn, sgArgs := "", ""
	if s.Subgroups {
		sgIn, sgArgs = ", @builtin(subgroup_invocation_id) sg_i: u32, @builtin(subgroup_size) sg_n: u32", ", sg_i, sg_n"
	}
	xb := k.xBinding()
	if s.XU != 0 && (xb == 0 || s.XU < 0 || s.XU > MaxXU) {
		return "", fmt.Errorf("shaders: %s: x of %d vec4s in a uniform binding; matvec.wgsl and the MoE matrix kernels only, at most %d", k.File, s.XU, MaxXU)
	}
	xdecl := "var<storage, read_write> x: array<vec4<f32>>"
	mx, mg := "var<storage, read_write> x: array<f32>", "var<storage, read_write> g: array<f32>"
	if s.XU != 0 {
		u := fmt.Sprintf("var<uniform> %%s: array<vec4<f32>, %d>", s.XU)
		xdecl = fmt.Sprintf(u, "x")
		if k.File == MoEDown.File {
			mg = fmt.Sprintf(u, "g")
		} else {
			mx = fmt.Sprintf(u, "x")
		}
	}
	r := strings.NewReplacer("{{X}}", xdecl, "{{MX}}", mx, "{{MG}}", mg, "{{SG_IN}}", sgIn, "{{SG_ARGS}}", sgArgs, "{{L}}", strconv.Itoa(l), "{{TT}}", strconv.Itoa(tt), "{{E}}", strconv.Itoa(max(s.E, 1)), "{{K}}", strconv.Itoa(max(s.K, 1)))
	return r.Replace(b.String()), nil
}

// FormatCode is the number the MoE kernels' expert table gives format d:
// its index in Formats.
func FormatCode(d tensor.DType) uint32 {
	for i, f := range Formats {
		if f == d {
			return uint32(i)
		}
	}
	panic("shaders: no format code for " + d.String())
}

// MoEKey is the key under which the MoE kernels' expert table names a
// matrix in format d in the buffer with id buf (see moe.wgsl).
func MoEKey(buf uint32, d tensor.DType) uint32 { return buf<<3 | FormatCode(d) }

func formatFile(d tensor.DType) string {
	switch d {
	case tensor.F32:
		return "fmt_f32.wgsl"
	case tensor.F16:
		return "fmt_f16.wgsl"
	case tensor.Q8_0:
		return "fmt_q8_0.wgsl"
	case tensor.Q4_0:
		return "fmt_q4_0.wgsl"
	case tensor.Q4_K:
		return "fmt_q4_k.wgsl"
	case tensor.MXFP4:
		return "fmt_mxfp4.wgsl"
	}
	return ""
}
