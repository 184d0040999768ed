package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestParseIndexKeys: the format has one key, weight_map, spelt exactly;
// file names with dots that are not ".." are file names.
func TestParseIndexKeys(t *testing.T) {
	for _, tt := range []struct {
		name, raw, want string
	}{
		{"exact key", `{"weight_map":{"a":"..0"}}`, ""},
		{"other case", `{"weight_mAp":{"a":"x.safetensors"}}`, "weight_map is missing"},
		{"both spellings", `{"weight_map":{"a":"x"},"Weight_Map":{"a":"../y"}}`, ""},
		{"parent", `{"weight_map":{"a":".."}}`, "is not a file name"},
		{"the directory itself", `{"weight_map":{"a":"."}}`, "is not a file name"},
		{"deep", `{"weight_map":{"a":"x"},"m":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`, "nests deeper than 128"},
		{"too large", `{"weight_map":{"a":"x"},"m":"` + strings.Repeat("x", MaxIndexBytes) + `"}`, "more than the 67108864 accepted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseIndex("i.json", []byte(tt.raw))
			if tt.want == "" {
				if err != nil || m["a"] == "" || strings.Contains(m["a"], "/") {
					t.Fatalf("got %v, %v", m, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestDeepHeaderIsCheap: 10 MB of "[" in a header is refused quickly and
// without a frame per level (it cost 835 MB).
func TestDeepHeaderIsCheap(t *testing.T) {
	file := rawFile(`{"a":`+strings.Repeat("[", 10<<20)+`}`, nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := NewReader(bytes.NewReader(file), int64(len(file)), "deep.safetensors")
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "deep.safetensors") || !strings.Contains(err.Error(), "nests deeper than 128") {
		t.Fatalf("error %v, want the depth refused, naming the file", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*uint64(len(file)) {
		t.Errorf("allocated %d bytes for a %d-byte file", alloc, len(file))
	}
	if took > 5*time.Second {
		t.Errorf("took %v", took)
	}
}

// TestOpenDirHugeIndex: the index's size is checked before it is read.
func TestOpenDirHugeIndex(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5 << 30); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	f.Close()
	start := time.Now()
	_, err = OpenDir(dir)
	if err == nil || !strings.Contains(err.Error(), "at most 67108864 bytes") || !strings.Contains(err.Error(), IndexFile) {
		t.Fatalf("error %v, want the size refused", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}
