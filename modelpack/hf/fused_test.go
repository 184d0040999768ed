package hf_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestResolveFused: for gpt-oss in both expert layouts (bf16 stored
// input-major with gate and up interleaved, and MXFP4 blocks and scales),
// Resolve lists every expert tensor and expert bias in a Fused group whose
// sources, read from the files and unfused, are the bytes of the tensors
// reading the whole files gives, in order; a short read is an error naming
// the file.
func TestResolveFused(t *testing.T) {
	for _, tt := range []struct {
		name  string
		mxfp4 bool
		dtype tensor.DType // of the experts as loaded
	}{
		{"bf16", false, tensor.BF16},
		{"mxfp4", true, tensor.MXFP4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := synthDir(t, "gpt_oss", func(o *synth.Options) { o.MXFP4, o.DType = tt.mxfp4, tensor.BF16 })
			m, err := hf.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
			file, _ := os.ReadFile(filepath.Join(dir, "model.safetensors"))
			st, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var infos []safetensors.Info
			for _, n := range st.Names() {
				in, _ := st.Info(n)
				infos = append(infos, in)
			}
			res, err := hf.Resolve(raw, infos)
			if err != nil {
				t.Fatal(err)
			}
			c := res.Config
			covered := map[string]bool{}
			for _, f := range res.Fused {
				var src []byte
				for _, in := range f.Sources {
					src = append(src, file[in.FileOffset:in.FileOffset+in.Size()]...)
				}
				got, err := f.Unfuse(src)
				if err != nil {
					t.Fatal(err)
				}
				var want []byte
				for _, n := range f.Names {
					w := m.Weights[n]
					if _, ok := res.Tensors[n]; ok {
						t.Errorf("%s is both fused and stored as is", n)
					}
					if strings.Contains(n, ".experts.") && w.DType != tt.dtype {
						t.Errorf("%s loads as %v, want %v", n, w.DType, tt.dtype)
					}
					want = append(want, w.Data...)
					covered[n] = true
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%v: unfused bytes differ from the loaded tensors'", f.Names)
				}
				if _, err := f.Unfuse(src[1:]); err == nil || !strings.Contains(err.Error(), "model.safetensors") {
					t.Errorf("%v: a short read: %v", f.Names, err)
				}
			}
			for _, sp := range c.Spec() {
				_, plain := res.Tensors[sp.Name]
				if !plain && !covered[sp.Name] {
					t.Errorf("%s is in neither Tensors nor Fused", sp.Name)
				}
			}
			// 2 bias groups, and gate/up plus down per expert
			if want := c.Layers * (1 + 2*len(c.FFN[0].ExpertWidths)); len(res.Fused) != want {
				t.Errorf("%d fused groups, want %d", len(res.Fused), want)
			}
		})
	}
}
