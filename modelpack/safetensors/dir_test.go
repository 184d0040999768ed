package safetensors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moderuntime/mode/runtime/tensor"
)

// writeShards writes each shard's tensors to its own file and an index
// mapping weightMap (nil: derived from the shards).
func writeShards(t *testing.T, dir string, shards map[string][]*tensor.Tensor, weightMap map[string]string) {
	t.Helper()
	derived := map[string]string{}
	for file, ts := range shards {
		if err := WriteFile(filepath.Join(dir, file), nil, ts...); err != nil {
			t.Fatal(err)
		}
		for _, x := range ts {
			derived[x.Name] = file
		}
	}
	if weightMap == nil {
		weightMap = derived
	}
	writeJSON(t, filepath.Join(dir, IndexFile), map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": weightMap})
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func twoShards() map[string][]*tensor.Tensor {
	return map[string][]*tensor.Tensor{
		"model-00001-of-00002.safetensors": {ramp("a", tensor.F32, 1, 2), ramp("b", tensor.F16, 2, 3)},
		"model-00002-of-00002.safetensors": {ramp("c", tensor.BF16, 3, 4)},
	}
}

func TestDirSharded(t *testing.T) {
	dir := t.TempDir()
	writeShards(t, dir, twoShards(), nil)
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := d.Names(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Names = %v", got)
	}
	if got := len(d.Files()); got != 2 {
		t.Errorf("%d files, want 2", got)
	}
	info, ok := d.Info("c")
	if !ok || filepath.Base(info.File) != "model-00002-of-00002.safetensors" {
		t.Errorf("Info(c) = %+v, %v", info, ok)
	}
	x, err := d.Read("c")
	if err != nil || x.DType != tensor.BF16 || x.Data[0] != 3 {
		t.Errorf("Read(c) = %v, %v", x, err)
	}
	_, err = d.Read("zz")
	wantErr(t, err, `no tensor "zz"`)
}

func TestDirSingle(t *testing.T) {
	dir := t.TempDir()
	if err := WriteFile(filepath.Join(dir, SingleFile), nil, ramp("x", tensor.F32, 0, 2)); err != nil {
		t.Fatal(err)
	}
	// A stale index next to model.safetensors is ignored, as transformers does.
	writeJSON(t, filepath.Join(dir, IndexFile), map[string]any{"weight_map": map[string]string{"y": "gone.safetensors"}})
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := d.Names(); !slices.Equal(got, []string{"x"}) {
		t.Errorf("Names = %v", got)
	}
}

func TestDirErrors(t *testing.T) {
	shard1 := "model-00001-of-00002.safetensors"
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  []string
	}{
		{"empty directory", func(t *testing.T, dir string) {}, []string{"neither model.safetensors nor"}},
		{"missing shard", func(t *testing.T, dir string) {
			writeShards(t, dir, twoShards(), nil)
			os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors"))
		}, []string{IndexFile, `tensor "c"`, "model-00002-of-00002.safetensors is missing"}},
		{"tensor missing from shard", func(t *testing.T, dir string) {
			writeShards(t, dir, twoShards(), map[string]string{"a": shard1, "b": shard1, "c": shard1})
		}, []string{IndexFile, `tensor "c"`, "does not contain it"}},
		{"tensor not in index", func(t *testing.T, dir string) {
			writeShards(t, dir, twoShards(), map[string]string{"a": shard1, "c": "model-00002-of-00002.safetensors"})
		}, []string{shard1, `tensor "b"`, "not listed"}},
		{"shard outside directory", func(t *testing.T, dir string) {
			writeJSON(t, filepath.Join(dir, IndexFile), map[string]any{"weight_map": map[string]string{"a": "../evil.safetensors"}})
		}, []string{IndexFile, `tensor "a"`, "not a file name in the directory"}},
		{"empty weight_map", func(t *testing.T, dir string) {
			writeJSON(t, filepath.Join(dir, IndexFile), map[string]any{"metadata": map[string]any{}})
		}, []string{IndexFile, "weight_map is missing or empty"}},
		{"duplicate in weight_map", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}`), 0o644)
		}, []string{IndexFile, `tensor "a" listed more than once`}},
		{"invalid index JSON", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"weight_map":`), 0o644)
		}, []string{IndexFile, "invalid JSON"}},
		{"corrupt shard", func(t *testing.T, dir string) {
			writeShards(t, dir, twoShards(), nil)
			os.WriteFile(filepath.Join(dir, shard1), []byte("garbage!"), 0o644)
		}, []string{shard1, "header length"}},
		{"corrupt single file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, SingleFile), []byte("xx"), 0o644)
		}, []string{SingleFile, "too short"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			d, err := OpenDir(dir)
			if err == nil {
				d.Close()
			}
			wantErr(t, err, tt.want...)
		})
	}
}
