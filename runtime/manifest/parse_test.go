package manifest

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moderuntime/mode/internal/cputime"
	"github.com/moderuntime/mode/runtime/model"
)

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// valid returns a minimal valid manifest: a 1-layer model with two routed
// experts of different widths.
func valid() *Manifest {
	return validOf(model.FFN{ExpertWidths: []int{2, 6}, Router: &model.Router{Scoring: model.Softmax, TopK: 1}})
}

// validDeep is valid with experts of other architectures: the second of
// depth 3 with ReLU², the first GELU-tanh.
func validDeep() *Manifest {
	return validOf(model.FFN{ExpertWidths: []int{2, 6}, Router: &model.Router{Scoring: model.Softmax, TopK: 1},
		ExpertArch: []model.ExpertArch{{Act: model.ActGELUTanh}, {Act: model.ActReLU2, Extra: []int{3, 5}}}})
}

func validOf(ffn model.FFN) *Manifest {
	cfg := model.Config{Arch: "mode", Dim: 4, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 2, Vocab: 8, MaxSeq: 16,
		NormEps: 1e-5, RopeTheta: 10000, RopeStyle: model.RopeHalf, TiedOutput: true, BOS: 0, EOS: []int{1},
		FFN: []model.FFN{ffn}}
	m := &Manifest{Format: Format, Version: Version, Model: cfg, Quant: "f32",
		Tokenizer: Tokenizer{Kind: "hf", File: "shards/t.json", SHA256: sha, Size: 10}}
	add := func(id, kind string, layer, expert int, specs []model.TensorSpec) {
		s := Shard{ID: id, Kind: kind, Layer: layer, Expert: expert, SHA256: sha}
		for _, sp := range specs {
			n := int64(4)
			for _, d := range sp.Shape {
				n *= int64(d)
			}
			s.Tensors = append(s.Tensors, Tensor{Name: sp.Name, DType: "f32", Shape: sp.Shape, Offset: s.Size, Length: n})
			s.Size += n
		}
		s.Pieces = []Piece{{File: "shards/" + id, Length: s.Size}}
		m.Shards = append(m.Shards, s)
	}
	var core, layer []model.TensorSpec
	experts := map[int][]model.TensorSpec{}
	for _, sp := range cfg.Spec() {
		switch {
		case sp.Layer < 0:
			core = append(core, sp)
		case sp.Expert < 0:
			layer = append(layer, sp)
		default:
			experts[sp.Expert] = append(experts[sp.Expert], sp)
		}
	}
	add("core", KindCore, -1, -1, core)
	add("layer.0", KindLayer, 0, -1, layer)
	add("layer.0.expert.0", KindExpert, 0, 0, experts[0])
	add("layer.0.expert.1", KindExpert, 0, 1, experts[1])
	return m
}

func TestParseValid(t *testing.T) {
	b, err := Marshal(valid())
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Shards) != 4 || m.Model.FFN[0].ExpertWidths[1] != 6 {
		t.Fatalf("parsed %+v", m)
	}
	// Experts of other architectures: their later blocks' tensors are in
	// the expert's shard.
	b, err = Marshal(validDeep())
	if err != nil {
		t.Fatal(err)
	}
	if m, err = Parse(b); err != nil {
		t.Fatal(err)
	}
	if a := m.Model.FFN[0].Arch(1); a.Act != model.ActReLU2 || a.Depth() != 3 || len(m.Shards[3].Tensors) != 3+2*4 {
		t.Fatalf("parsed arch %+v, %d tensors in the deep expert's shard", a, len(m.Shards[3].Tensors))
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *Manifest)
		raw  string
		want string
	}{
		{name: "not json", raw: "{", want: "manifest:"},
		{name: "unknown field", raw: `{"format":"mode-pack","version":1,"bogus":1}`, want: `unknown field "bogus"`},
		{name: "trailing data", raw: `{"format":"x"} {}`, want: "trailing data"},
		{name: "deep nesting", raw: `{"format":` + strings.Repeat("[", 1<<20) + `}`, want: "manifest: JSON nests deeper than 128 levels"},
		{name: "format", edit: func(m *Manifest) { m.Format = "other" }, want: `format "other"`},
		{name: "version", edit: func(m *Manifest) { m.Version = 2 }, want: "version 2 is not supported"},
		{name: "bad config", edit: func(m *Manifest) { m.Model.KVHeads = 3 }, want: "n_heads 2 is not a multiple of n_kv_heads 3"},
		{name: "tokenizer kind", edit: func(m *Manifest) { m.Tokenizer.Kind = "spm" }, want: "tokenizer kind"},
		{name: "bad hash", edit: func(m *Manifest) { m.Shards[1].SHA256 = "xyz" }, want: "shard layer.0: sha256"},
		{name: "duplicate id", edit: func(m *Manifest) { m.Shards[1].ID = "core" }, want: `shard id "core" appears twice`},
		{name: "pieces do not add up", edit: func(m *Manifest) { m.Shards[2].Size++ }, want: "pieces hold"},
		{name: "tensor outside shard", edit: func(m *Manifest) { m.Shards[2].Tensors[0].Offset = 1 << 20 }, want: "outside the shard"},
		{name: "wrong length", edit: func(m *Manifest) { m.Shards[2].Tensors[0].Length = 3 }, want: "needs"},
		{name: "unknown dtype", edit: func(m *Manifest) { m.Shards[2].Tensors[0].DType = "q3" }, want: `unknown dtype "q3"`},
		{name: "wrong shape", edit: func(m *Manifest) {
			m.Shards[3].Tensors[0].Shape = []int{2, 4}
			m.Shards[3].Tensors[0].Length = 32
		}, want: "shape [2 4], the config needs [6 4]"},
		{name: "tensor in wrong shard", edit: func(m *Manifest) {
			m.Shards[2].Tensors[0].Name = "layers.0.experts.1.gate"
			m.Shards[2].Tensors[0].Shape = []int{6, 4}
			m.Shards[2].Tensors[0].Length = 96
			m.Shards[2].Size += 64
			m.Shards[2].Pieces[0].Length += 64
		}, want: "which is for layer 0 expert 0"},
		{name: "missing tensor", edit: func(m *Manifest) { m.Shards = m.Shards[:3] }, want: "the config needs 15 tensors, the shards list only 12"},
		{name: "tensor in no shard", edit: func(m *Manifest) {
			// As many entries as the config needs, but one twice and one not at all.
			m.Shards[3].Tensors[0] = m.Shards[3].Tensors[1]
			m.Shards[3].Tensors[0].Offset = 0
		}, want: "tensor layers.0.experts.1.gate is in no shard"},
		{name: "shard beyond bound", edit: func(m *Manifest) {
			m.Shards[0].Size = MaxShardSize + 1
			m.Shards[0].Pieces[0].Length = MaxShardSize + 1
		}, want: "more than the 8589934592 a shard may have"},
		{name: "core shard of 2^40 bytes", edit: func(m *Manifest) {
			m.Shards[0].Size = 1 << 40
			m.Shards[0].Pieces[0].Length = 1 << 40
		}, want: "a shard may have"},
		{name: "shard larger than its tensors", edit: func(m *Manifest) {
			m.Shards[0].Size += 4096
			m.Shards[0].Pieces[0].Length += 4096
		}, want: "but its tensors end at byte"},
		{name: "tokenizer escapes", edit: func(m *Manifest) { m.Tokenizer.File = "../../../etc/passwd" }, want: "tokenizer: file \"../../../etc/passwd\" must be a relative path"},
		{name: "tokenizer absolute", edit: func(m *Manifest) { m.Tokenizer.File = "/dev/zero" }, want: "relative path inside the pack"},
		{name: "tokenizer config escapes", edit: func(m *Manifest) {
			m.Tokenizer.Config, m.Tokenizer.ConfigSHA256 = "a/../../b", sha
		}, want: "tokenizer config: file"},
		{name: "tokenizer too large", edit: func(m *Manifest) { m.Tokenizer.Size = MaxFileSize + 1 }, want: "tokenizer size 268435457 outside"},
		{name: "backslash", edit: func(m *Manifest) { m.Shards[0].Pieces[0].File = `..\\x` }, want: "relative path inside the pack"},
		{name: "foreign tensor", edit: func(m *Manifest) { m.Shards[0].Tensors[0].Name = "bogus" }, want: "bogus is not part of this model"},
		{name: "escaping path", edit: func(m *Manifest) { m.Shards[0].Pieces[0].File = "../../etc/passwd" }, want: "relative path inside the pack"},
		{name: "absolute path", edit: func(m *Manifest) { m.Shards[0].Pieces[0].File = "/etc/passwd" }, want: "relative path inside the pack"},
		{name: "expert out of range", edit: func(m *Manifest) { m.Shards[3].Expert = 7 }, want: "expert 7 out of range"},
		{name: "unknown activation", edit: func(m *Manifest) { m.Model.FFN[0].ExpertArch = []model.ExpertArch{{}, {Act: "swish"}} },
			want: `layer 0: expert_arch[1].act "swish" is not one the kernels implement`},
		{name: "expert_arch length", edit: func(m *Manifest) { m.Model.FFN[0].ExpertArch = []model.ExpertArch{{}} },
			want: "expert_arch has 1 entries for 2 routed experts"},
		{name: "deeper expert without its blocks", edit: func(m *Manifest) {
			m.Model.FFN[0].ExpertArch = []model.ExpertArch{{Extra: []int{4}}, {}}
		}, want: "the config needs 19 tensors, the shards list only 15"},
		{name: "rows twice", edit: func(m *Manifest) {
			m.Shards[0].Tensors = append(m.Shards[0].Tensors, m.Shards[0].Tensors[0])
		}, want: "shards hold 16 rows, it has 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.raw)
			if tt.edit != nil {
				m := valid()
				tt.edit(m)
				b, _ = json.Marshal(m)
			}
			_, err := Parse(b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// FuzzParse: any input parses to a manifest that validates, or errors; it
// never panics.
func FuzzParse(f *testing.F) {
	b, _ := Marshal(valid())
	f.Add(b)
	mixed := valid()
	mixed.Quant, mixed.DenseQuant = "q4_0", "q8_0"
	b, _ = Marshal(mixed)
	f.Add(b)
	b, _ = Marshal(validDeep())
	f.Add(b)
	f.Add([]byte(`{"format":"mode-pack","version":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err == nil {
			if err := m.Validate(); err != nil {
				t.Fatalf("Parse accepted an invalid manifest: %v", err)
			}
		}
	})
}

// TestCheckFileName: names with dots that are not a ".." element are
// ordinary file names.
func TestCheckFileName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"shards/abc", true}, {"a..b", true}, {"..0", true}, {"x/...", true}, {"https://h/x/../y", true},
		{"", false}, {"..", false}, {"../x", false}, {"a/../../x", false}, {"/etc/passwd", false},
		{`a\\b`, false}, {"c:x", false}, {"a\x00b", false},
	} {
		if err := CheckFileName(tt.name); (err == nil) != tt.ok {
			t.Errorf("CheckFileName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// TestParseHostileCounts: a manifest declaring more experts than it lists
// tensors for is refused quickly and without building a description of
// every expert (the case that took a gigabyte and 15 s).
func TestParseHostileCounts(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *Manifest)
		want string
	}{
		{"a million experts in a layer", func(m *Manifest) {
			m.Model.FFN[0].ExpertWidths = ones(1 << 20)
		}, "more than the 16384"},
		{"the most experts in 256 layers", func(m *Manifest) {
			m.Model.Layers = 256
			m.Model.FFN = make([]model.FFN, 256)
			for i := range m.Model.FFN {
				m.Model.FFN[i] = model.FFN{ExpertWidths: ones(model.MaxExperts), Router: &model.Router{Scoring: model.Softmax, TopK: 1}}
			}
		}, "the config needs 12584706 tensors, the shards list only 15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid()
			tt.edit(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := cputime.Now()
			_, err = Parse(b)
			took := cputime.Now() - start
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			// Decoding the widths costs a few times the input; the tensor
			// descriptions would cost hundreds of bytes per expert.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32*uint64(len(b))+1<<20 {
				t.Errorf("allocated %d bytes to reject a %d-byte manifest", alloc, len(b))
			}
			if took > cputime.Budget(5*time.Second) {
				t.Errorf("took %v of CPU time to reject", took)
			}
		})
	}
}

func ones(n int) []int {
	xs := make([]int, n)
	for i := range xs {
		xs[i] = 1
	}
	return xs
}

// widthMarker stands for a layer's expert widths in the JSON
// FuzzValidateDims marshals, replaced by the list as text.
const widthMarker = -977_123_456_789

// FuzzValidateDims gives the validator hostile dimensions and counts
// inside an otherwise valid manifest: it must answer (quickly, the fuzzer
// times out otherwise) without panicking, and whatever it accepts must
// keep within the stated bounds.
func FuzzValidateDims(f *testing.F) {
	f.Add(4, 8, 1, 2, 6, int64(0), 0)
	f.Add(1<<24, 1<<24, 8, 1<<14, 1<<24, int64(1)<<40, 2)
	f.Add(-1, 0, 0, 0, -5, int64(-1), 1)
	f.Add(1<<30, 3, 100000, 1<<20, 1, int64(MaxShardSize)+1, 3)
	f.Fuzz(func(t *testing.T, dim, vocab, layers, experts, width int, size int64, which int) {
		m := valid()
		m.Model.Dim, m.Model.Vocab = dim, vocab
		// The harness must cost far less than Parse: it used to marshal up
		// to 2^17 widths of up to 20 digits (2.6 MB of JSON) per input,
		// 10-130 inputs a second. Now most inputs list up to 64 experts a
		// layer; one in eight large counts lists the bound crossed
		// (MaxExperts+1, in one layer), and MaxExperts and MaxExperts+1
		// themselves stay as they are. The widths are spliced into the
		// JSON as text rather than marshalled.
		n := 0
		switch {
		case experts <= 0:
		case experts <= 64 || experts == model.MaxExperts || experts == model.MaxExperts+1:
			n = experts
		case experts%8 == 0:
			n = model.MaxExperts + 1
		default:
			n = experts % 65
		}
		// The layers are rewritten when their lists stay small (the bound
		// is divided, not multiplied, so that no product overflows);
		// otherwise the valid manifest's one layer stays.
		if layers >= 0 && layers <= 1024 && layers <= (model.MaxExperts+2)/max(n, 1) {
			m.Model.Layers = layers
			m.Model.FFN = make([]model.FFN, layers)
			for i := range m.Model.FFN {
				m.Model.FFN[i] = model.FFN{Router: &model.Router{Scoring: model.Softmax, TopK: 1}}
				if n > 0 {
					m.Model.FFN[i].ExpertWidths = []int{widthMarker}
				}
			}
		}
		if len(m.Shards) > 0 {
			s := &m.Shards[((which%len(m.Shards))+len(m.Shards))%len(m.Shards)]
			s.Size = size
			s.Pieces[0].Length = size
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			w := strconv.Itoa(width)
			list := "[" + strings.Repeat(w+",", n-1) + w + "]"
			b = bytes.ReplaceAll(b, []byte("["+strconv.Itoa(widthMarker)+"]"), []byte(list))
		}
		got, err := Parse(b)
		if err != nil {
			return
		}
		for _, s := range got.Shards {
			if s.Size > MaxShardSize {
				t.Fatalf("accepted shard %s of %d bytes", s.ID, s.Size)
			}
		}
		for _, f := range got.Model.FFN {
			if len(f.ExpertWidths) > model.MaxExperts {
				t.Fatalf("accepted %d experts in a layer", len(f.ExpertWidths))
			}
		}
	})
}

// TestCheckCounts: the pre-decode scan counts elements of the bounded
// arrays only where they are keys, through strings and nesting.
func TestCheckCounts(t *testing.T) {
	long := "[" + strings.Repeat("1,", model.MaxExperts) + "1]" // MaxExperts+1 elements
	exact := "[" + strings.Repeat("1,", model.MaxExperts-1) + "1]"
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"too many", `{"expert_widths":` + long + `}`, false},
		{"too many, spaced", `{"expert_widths" : ` + long + `}`, false},
		{"exactly the bound", `{"expert_widths":` + exact + `}`, true},
		{"as a string value", `{"name":"expert_widths","x":` + long + `}`, true},
		{"inside a string", `{"name":"\"expert_widths\":` + strings.Repeat("1,", model.MaxExperts+1) + `"}`, true},
		{"nested commas", `{"expert_widths":[[1,2,3],{"a":1,"b":2}]}`, true},
		{"empty", `{"expert_widths":[]}`, true},
		{"shared", `{"shared_widths":[` + strings.Repeat("1,", model.MaxShared) + `1]}`, false},
	}
	for _, tt := range tests {
		if err := checkCounts([]byte(tt.in)); (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	if n := countElements([]byte(`[1,"a,b",[2,3],4]`), 0, 100); n != 4 {
		t.Errorf("countElements = %d, want 4", n)
	}
}
