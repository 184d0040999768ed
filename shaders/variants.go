package shaders

import "github.com/moderuntime/mode/runtime/tensor"

// Variant is one kernel specialised by one Spec: one pipeline the
// backends may compile.
type Variant struct {
	Kernel Kernel
	Spec   Spec
}

// Variants lists every specialisation the backends compile, so that
// validators (standalone WGSL compilers, a browser's) can check them all.
// Route and Sample are specialised on sizes at run time; one
// representative size each stands for them (the size only bounds loops).
func Variants() []Variant {
	var out []Variant
	add := func(ks []Kernel, specs ...Spec) {
		for _, k := range ks {
			for _, s := range specs {
				out = append(out, Variant{k, s})
			}
		}
	}
	var formats, matmul []Spec
	for _, f := range Formats {
		formats = append(formats, Spec{Format: f})
		matmul = append(matmul, Spec{Format: f, TT: 1}, Spec{Format: f, TT: 8})
	}
	f16 := Spec{Format: tensor.F16, F16: true}
	add([]Kernel{Embed}, formats...)
	for _, f := range Formats {
		for _, l := range []int{1, MoELanes} {
			add([]Kernel{MoEGateUp, MoEDown, MoEDownSum}, Spec{Format: f, L: l})
		}
		add([]Kernel{MoEGateUp, MoEDown, MoEDownSum}, Spec{Format: f, L: 1, XU: 128})
	}
	add([]Kernel{MatMul}, append(matmul, Spec{Format: tensor.F16, TT: 1, F16: true}, Spec{Format: tensor.F16, TT: 8, F16: true})...)
	add([]Kernel{MatVecRows, GEMM}, append(formats, f16)...)
	for _, f := range Formats {
		for _, l := range MatVecLanes {
			add([]Kernel{MatVec, MatVecGU, MatVecMulti, MatVecArgmax}, Spec{Format: f, L: l})
			add([]Kernel{MatVecNorm, MatVecGUNorm, MatVecMultiNorm, MatVecArgmaxNorm}, Spec{Format: f, L: l, Norm: true})
		}
		// x in a uniform binding (one lane per row); the length only
		// sizes the array.
		add([]Kernel{MatVec, MatVecGU}, Spec{Format: f, L: 1, XU: 128})
		add([]Kernel{MatVecNorm, MatVecGUNorm}, Spec{Format: f, L: 1, Norm: true, XU: 128})
		for _, l := range MatVecSubgroupLanes {
			add([]Kernel{MatVec, MatVecGU, MatVecMulti, MatVecArgmax}, Spec{Format: f, L: l, Subgroups: true})
			add([]Kernel{MatVecNorm, MatVecGUNorm, MatVecMultiNorm, MatVecArgmaxNorm}, Spec{Format: f, L: l, Norm: true, Subgroups: true})
		}
	}
	add([]Kernel{AttnPartial, AttnReduce, AttnSingle}, Spec{}, Spec{KVF16: true})
	add([]Kernel{Route}, Spec{E: 64, K: 8})
	for _, f := range Formats {
		for _, l := range MatVecLanes {
			add([]Kernel{RouterRoute}, Spec{Format: f, L: l, E: 64, K: 8})
			add([]Kernel{RouterRouteNorm}, Spec{Format: f, L: l, E: 64, K: 8, Norm: true})
		}
		for _, l := range MatVecSubgroupLanes {
			add([]Kernel{RouterRoute}, Spec{Format: f, L: l, E: 64, K: 8, Subgroups: true})
			add([]Kernel{RouterRouteNorm}, Spec{Format: f, L: l, E: 64, K: 8, Norm: true, Subgroups: true})
		}
	}
	add([]Kernel{Sample}, Spec{K: 40})
	add([]Kernel{AttnRoPE, Layer}, Spec{})
	add([]Kernel{Layer}, Spec{E: 64, K: 8}, Spec{E: 64, K: 8, L: MoELanes})
	add([]Kernel{RoPEStore, KVStore, RMSNorm, RMSNormIP, RMSNormIP2, RoPE, Copy, PackF16, Add, Scale, SwiGLU, Accum, Argmax, MoECombine, MoEAct, MoEBias, MoEBlockAct, MoENorm, MLAAttn}, Spec{})
	return out
}
