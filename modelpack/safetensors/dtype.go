package safetensors

import "github.com/moderuntime/mode/runtime/tensor"

// dtypeBits returns the element width in bits of every dtype the format
// defines. Knowing the width of dtypes this package cannot load still lets
// a Reader check their byte ranges and list them.
func dtypeBits(dtype string) (int64, bool) {
	switch dtype {
	case "F4":
		return 4, true
	case "F6_E2M3", "F6_E3M2":
		return 6, true
	case "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0":
		return 8, true
	case "U16", "I16", "F16", "BF16":
		return 16, true
	case "U32", "I32", "F32":
		return 32, true
	case "U64", "I64", "F64", "C64":
		return 64, true
	}
	return 0, false
}

// loadable maps the dtypes that become a tensor.Tensor.
func loadable(dtype string) (tensor.DType, bool) {
	switch dtype {
	case "F32":
		return tensor.F32, true
	case "F16":
		return tensor.F16, true
	case "BF16":
		return tensor.BF16, true
	}
	return tensor.Invalid, false
}

// dtypeName is the safetensors name of a tensor.DType the Writer can store.
func dtypeName(d tensor.DType) (string, bool) {
	switch d {
	case tensor.F32:
		return "F32", true
	case tensor.F16:
		return "F16", true
	case tensor.BF16:
		return "BF16", true
	}
	return "", false
}
