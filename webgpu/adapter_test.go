package webgpu

import "testing"

func TestAdapterInfo(t *testing.T) {
	tests := []struct {
		name     string
		fallback bool
		names    []string
		want     AdapterInfo
	}{
		{"chrome swiftshader", false, []string{"", "", "swiftshader", "google"}, AdapterInfo{Name: "swiftshader", Software: true}},
		{"lavapipe", false, []string{"llvmpipe (LLVM 15.0.6, 256 bits)", "Mesa 22.3.6", "", ""}, AdapterInfo{Name: "llvmpipe (LLVM 15.0.6, 256 bits)", Software: true}},
		{"lavapipe native", false, []string{"0x0", "llvmpipe (LLVM 15.0.6, 256 bits)", "", "0x10005"}, AdapterInfo{Name: "llvmpipe (LLVM 15.0.6, 256 bits)", Software: true}},
		{"hex ids only", false, []string{"0x0", "", "", "0x10de"}, AdapterInfo{Name: "unnamed adapter"}},
		{"fallback flag", true, []string{"", "", "", "acme"}, AdapterInfo{Name: "acme", Software: true}},
		{"windows warp", false, []string{"Microsoft Basic Render Driver"}, AdapterInfo{Name: "Microsoft Basic Render Driver", Software: true}},
		{"hardware", false, []string{"NVIDIA GeForce RTX 4090", "", "ada", "nvidia"}, AdapterInfo{Name: "NVIDIA GeForce RTX 4090"}},
		{"apple", false, []string{"", "", "metal-3", "apple"}, AdapterInfo{Name: "metal-3"}},
		{"nothing known", false, nil, AdapterInfo{Name: "unnamed adapter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := adapterInfo(tt.fallback, tt.names...); got != tt.want {
				t.Errorf("adapterInfo(%v, %q) = %+v, want %+v", tt.fallback, tt.names, got, tt.want)
			}
		})
	}
}
