package llama2c

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

// checkpoint builds a valid tiny checkpoint: dim 4, hidden 6, 1 layer,
// 2 heads, 1 kv head, vocab 5, seq 3; tied unless untied is set.
func checkpoint(untied bool) []byte {
	h := Header{Dim: 4, Hidden: 6, Layers: 1, Heads: 2, KVHeads: 1, Vocab: 5, SeqLen: 3, Tied: !untied}
	var b bytes.Buffer
	vocab := int32(h.Vocab)
	if untied {
		vocab = -vocab
	}
	for _, v := range []int32{4, 6, 1, 2, 1, vocab, 3} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	n := int(h.DataSize() / 4)
	for i := 0; i < n; i++ {
		binary.Write(&b, binary.LittleEndian, float32(i%7)*0.125)
	}
	return b.Bytes()
}

func TestRead(t *testing.T) {
	for _, untied := range []bool{false, true} {
		b := checkpoint(untied)
		m, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("untied=%v: %v", untied, err)
		}
		c := m.Config
		if c.Dim != 4 || c.KVHeads != 1 || c.HeadDim != 2 || c.FFN[0].SharedWidths[0] != 6 || c.TiedOutput == untied {
			t.Errorf("untied=%v: config %+v", untied, c)
		}
		if _, ok := m.Weights["output"]; ok != untied {
			t.Errorf("untied=%v: output tensor present = %v", untied, ok)
		}
	}
}

func TestReadErrors(t *testing.T) {
	good := checkpoint(false)
	nan := bytes.Clone(good)
	binary.LittleEndian.PutUint32(nan[headerSize+8:], math.Float32bits(float32(math.NaN())))
	badHeads := bytes.Clone(good)
	binary.LittleEndian.PutUint32(badHeads[12:], 3) // n_heads 3 does not divide dim 4
	negDim := bytes.Clone(good)
	binary.LittleEndian.PutUint32(negDim[0:], uint32(0xffffff00))
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "reading header"},
		{"short header", good[:10], "reading header"},
		{"truncated weights", good[:len(good)-4], "truncated"},
		{"trailing bytes", append(bytes.Clone(good), 0, 0, 0, 0), "trailing bytes"},
		{"NaN weight", nan, "tok_embeddings: element 2 is NaN"},
		{"heads do not divide dim", badHeads, "not divisible"},
		{"negative dim", negDim, "dim = -256 out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tt.data), int64(len(tt.data)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestLoadNamesFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.bin")
	if err == nil || !strings.Contains(err.Error(), "does-not-exist.bin") {
		t.Fatalf("error = %v, want the file named", err)
	}
}

// FuzzRead: any bytes either load as a valid model or give an error; never
// a panic, and never an allocation the file cannot back (sizes are checked
// against the file before reading).
func FuzzRead(f *testing.F) {
	f.Add(checkpoint(false))
	f.Add(checkpoint(true))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Read(bytes.NewReader(b), int64(len(b)))
		if err == nil {
			if err := m.Validate(false); err != nil {
				t.Fatalf("Read accepted an invalid model: %v", err)
			}
		}
	})
}
