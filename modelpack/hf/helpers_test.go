package hf_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/tensor"
)

// synthDir writes the default model of arch, edited by edit, to a new
// temporary directory.
func synthDir(t *testing.T, arch string, edit func(*synth.Options)) string {
	t.Helper()
	o := synth.Default(arch)
	if edit != nil {
		edit(&o)
	}
	dir := t.TempDir()
	if err := synth.Write(dir, o); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readConfig returns dir's config.json as a generic map.
func readConfig(t *testing.T, dir string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeConfig(t *testing.T, dir string, m map[string]any) {
	t.Helper()
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editConfig applies edit to dir's config.json.
func editConfig(t *testing.T, dir string, edit func(m map[string]any)) {
	t.Helper()
	m := readConfig(t, dir)
	edit(m)
	writeConfig(t, dir, m)
}

// editTensors rewrites dir's checkpoint as one model.safetensors after
// edit has changed the tensors, keyed by name.
func editTensors(t *testing.T, dir string, edit func(ts map[string]*tensor.Tensor)) {
	t.Helper()
	d, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ts := map[string]*tensor.Tensor{}
	for _, name := range d.Names() {
		if ts[name], err = d.Read(name); err != nil {
			t.Fatal(err)
		}
	}
	files := d.Files()
	d.Close()
	for _, f := range append(files, filepath.Join(dir, safetensors.IndexFile)) {
		os.Remove(f)
	}
	edit(ts)
	var list []*tensor.Tensor
	for name, x := range ts {
		x.Name = name // tests build tensors with short names
		list = append(list, x)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, safetensors.SingleFile), nil, list...); err != nil {
		t.Fatal(err)
	}
}

// f32 returns an f32 tensor of the given shape filled with v.
func f32(name string, v float32, shape ...int) *tensor.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = v
	}
	return tensor.FromF32(name, shape, vals)
}

// wantErr fails unless err mentions every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}
