package shaders

import (
	"embed"
	"fmt"
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
	GEMM        = Kernel{File: "gemm.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, Read}, Format: true}
	RMSNorm     = Kernel{File: "rmsnorm.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite}}
	RoPE        = Kernel{File: "rope.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite}}
	Copy        = Kernel{File: "copy.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
	PackF16     = Kernel{File: "pack_f16.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
	Add         = Kernel{File: "add.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
	AttnPartial = Kernel{File: "attention.wgsl", Entry: "attn_partial", Bindings: []Access{Uniform, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	AttnReduce  = Kernel{File: "attention.wgsl", Entry: "attn_reduce", Bindings: []Access{Uniform, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite}}
	Route       = Kernel{File: "route.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, Read, ReadWrite}}
	MoEGateUp   = Kernel{File: "moe.wgsl", Entry: "moe_gu", Bindings: []Access{Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite}, Format: true}
	MoEDown     = Kernel{File: "moe.wgsl", Entry: "moe_down", Bindings: []Access{Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite}, Format: true}
	MoECombine  = Kernel{File: "moe_combine.wgsl", Entry: "main", Bindings: []Access{Uniform, Read, ReadWrite, ReadWrite, ReadWrite}}
	SwiGLU      = Kernel{File: "ffn.wgsl", Entry: "swiglu", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
	Accum       = Kernel{File: "ffn.wgsl", Entry: "accum", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
	Argmax      = Kernel{File: "argmax.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
	Sample      = Kernel{File: "sample.wgsl", Entry: "main", Bindings: []Access{Uniform, ReadWrite, ReadWrite}}
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
}

// Key identifies the pipeline of k specialised by s.
func (k Kernel) Key(s Spec) string {
	key := k.File + ":" + k.Entry
	if k.Format {
		key += "/" + s.Format.String()
	}
	key = fmt.Sprintf("%s/%d/%d/%d", key, s.TT, s.E, s.K)
	if s.KVF16 {
		key += "/kvf16"
	}
	if s.F16 {
		key += "/f16arith"
	}
	return key
}

// Formats are the weight formats the kernels read.
var Formats = []tensor.DType{tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K}

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
	arith := false // whether an include has an f16-arithmetic variant
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
		if name == "dot" || name == "tile" {
			arith = true
			file = name + "_f32.wgsl"
			if s.F16 {
				file = name + "_f16.wgsl"
			}
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
	tt := max(s.TT, 1)
	if tt > 8 {
		return "", fmt.Errorf("shaders: %d tokens per workgroup; at most 8", tt)
	}
	r := strings.NewReplacer("{{TT}}", strconv.Itoa(tt), "{{E}}", strconv.Itoa(max(s.E, 1)), "{{K}}", strconv.Itoa(max(s.K, 1)))
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
	}
	return ""
}
