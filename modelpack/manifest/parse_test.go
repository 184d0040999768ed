package manifest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/model"
)

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// valid returns a minimal valid manifest: a 1-layer model with two routed
// experts of different widths.
func valid() *Manifest {
	cfg := model.Config{Arch: "mode", Dim: 4, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 2, Vocab: 8, MaxSeq: 16,
		NormEps: 1e-5, RopeTheta: 10000, RopeStyle: model.RopeHalf, TiedOutput: true, BOS: 0, EOS: []int{1},
		FFN: []model.FFN{{ExpertWidths: []int{2, 6}, Router: &model.Router{Scoring: model.Softmax, TopK: 1}}}}
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
		{name: "missing tensor", edit: func(m *Manifest) { m.Shards = m.Shards[:3] }, want: "layers.0.experts.1.gate is in no shard"},
		{name: "foreign tensor", edit: func(m *Manifest) { m.Shards[0].Tensors[0].Name = "bogus" }, want: "bogus is not part of this model"},
		{name: "escaping path", edit: func(m *Manifest) { m.Shards[0].Pieces[0].File = "../../etc/passwd" }, want: "relative path inside the pack"},
		{name: "absolute path", edit: func(m *Manifest) { m.Shards[0].Pieces[0].File = "/etc/passwd" }, want: "relative path inside the pack"},
		{name: "expert out of range", edit: func(m *Manifest) { m.Shards[3].Expert = 7 }, want: "expert 7 out of range"},
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
