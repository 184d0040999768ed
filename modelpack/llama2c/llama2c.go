package llama2c

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

const headerSize = 7 * 4

// Header is the checkpoint's leading config block.
type Header struct {
	Dim, Hidden, Layers, Heads, KVHeads, Vocab, SeqLen int
	Tied                                               bool // vocab_size was positive: the classifier is the embedding table
}

// ReadHeader parses and sanity-checks the 28-byte header.
func ReadHeader(b []byte) (Header, error) {
	if len(b) < headerSize {
		return Header{}, fmt.Errorf("header is %d bytes, want %d", len(b), headerSize)
	}
	v := make([]int, 7)
	for i := range v {
		v[i] = int(int32(binary.LittleEndian.Uint32(b[4*i:])))
	}
	h := Header{Dim: v[0], Hidden: v[1], Layers: v[2], Heads: v[3], KVHeads: v[4], Vocab: v[5], SeqLen: v[6], Tied: v[5] > 0}
	if h.Vocab < 0 {
		h.Vocab = -h.Vocab
	}
	names := []string{"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"}
	for i, x := range []int{h.Dim, h.Hidden, h.Layers, h.Heads, h.KVHeads, h.Vocab, h.SeqLen} {
		if x <= 0 || x > 1<<20 {
			return h, fmt.Errorf("header field %s = %d out of range", names[i], x)
		}
	}
	if h.Layers > 4096 {
		return h, fmt.Errorf("header field n_layers = %d out of range", h.Layers) // keeps DataSize within int64
	}
	if h.Dim%h.Heads != 0 {
		return h, fmt.Errorf("header: dim %d not divisible by n_heads %d", h.Dim, h.Heads)
	}
	if h.Heads%h.KVHeads != 0 {
		return h, fmt.Errorf("header: n_heads %d not a multiple of n_kv_heads %d", h.Heads, h.KVHeads)
	}
	if (h.Dim/h.Heads)%2 != 0 {
		return h, fmt.Errorf("header: head size %d is odd", h.Dim/h.Heads)
	}
	return h, nil
}

// DataSize is the number of bytes of float32 data the header promises.
func (h Header) DataSize() int64 {
	d, hd, l := int64(h.Dim), int64(h.Hidden), int64(h.Layers)
	kv := d / int64(h.Heads) * int64(h.KVHeads)
	head := d / int64(h.Heads)
	n := int64(h.Vocab)*d + l*d + l*d*d + 2*l*d*kv + l*d*d + l*d + 3*l*d*hd + d + int64(h.SeqLen)*head
	if !h.Tied {
		n += int64(h.Vocab) * d
	}
	return 4 * n
}

// Config is the model.Config the header describes.
func (h Header) Config() model.Config {
	c := model.Config{
		Arch: "llama2c", Dim: h.Dim, Layers: h.Layers, Heads: h.Heads, KVHeads: h.KVHeads,
		HeadDim: h.Dim / h.Heads, Vocab: h.Vocab, MaxSeq: h.SeqLen,
		NormEps: 1e-5, RopeTheta: 10000, RopeStyle: model.RopeInterleaved,
		TiedOutput: h.Tied,
		// run.c starts from BOS (1) and stops when the model emits BOS again;
		// 2 (</s>) ends a sequence too.
		BOS: 1, EOS: []int{1, 2},
	}
	for range h.Layers {
		c.FFN = append(c.FFN, model.FFN{SharedWidths: []int{h.Hidden}})
	}
	return c
}

// Load reads a checkpoint file.
func Load(path string) (*model.Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m, err := Read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Read parses a checkpoint of the given total size from r, reading one
// tensor at a time.
func Read(r io.ReaderAt, size int64) (*model.Model, error) {
	hb := make([]byte, headerSize)
	if _, err := r.ReadAt(hb, 0); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	h, err := ReadHeader(hb)
	if err != nil {
		return nil, err
	}
	if want := headerSize + h.DataSize(); size < want {
		return nil, fmt.Errorf("truncated: %d bytes, the header describes %d", size, want)
	} else if size > want {
		return nil, fmt.Errorf("%d trailing bytes after the weights the header describes (%d bytes): wrong header?", size-want, want)
	}
	cfg := h.Config()
	w := model.Weights{}
	off := int64(headerSize)
	// next reads count float32s stored for all layers and splits them per layer.
	next := func(perLayer int, shape []int, name func(l int) string, layers int) error {
		for l := 0; l < layers; l++ {
			b := make([]byte, 4*perLayer)
			if _, err := r.ReadAt(b, off); err != nil {
				return fmt.Errorf("reading %s: %w", name(l), err)
			}
			off += int64(len(b))
			t := &tensor.Tensor{Name: name(l), DType: tensor.F32, Shape: shape, Data: b}
			v, _ := t.Float32s()
			if err := tensor.CheckFinite(t.Name, v); err != nil {
				return err
			}
			w[t.Name] = t
		}
		return nil
	}
	d, hid, kv := h.Dim, h.Hidden, cfg.KVDim()
	lname := func(s string) func(int) string { return func(l int) string { return model.LayerName(l, s) } }
	shared := func(p string) func(int) string { return func(l int) string { return model.SharedName(l, 0, p) } }
	one := func(s string) func(int) string { return func(int) string { return s } }
	L := h.Layers
	steps := []struct {
		n     int
		shape []int
		name  func(int) string
		count int
	}{
		{h.Vocab * d, []int{h.Vocab, d}, one(model.NameEmbed), 1},
		{d, []int{d}, lname("attn_norm"), L},
		{d * d, []int{d, d}, lname("wq"), L},
		{kv * d, []int{kv, d}, lname("wk"), L},
		{kv * d, []int{kv, d}, lname("wv"), L},
		{d * d, []int{d, d}, lname("wo"), L},
		{d, []int{d}, lname("ffn_norm"), L},
		{hid * d, []int{hid, d}, shared("gate"), L},
		{d * hid, []int{d, hid}, shared("down"), L},
		{hid * d, []int{hid, d}, shared("up"), L},
		{d, []int{d}, one(model.NameFinalNorm), 1},
	}
	for _, s := range steps {
		if err := next(s.n, s.shape, s.name, s.count); err != nil {
			return nil, err
		}
	}
	off += 4 * int64(h.SeqLen*cfg.HeadDim) // legacy freq_cis_real/imag, unused
	if !h.Tied {
		if err := next(h.Vocab*d, []int{h.Vocab, d}, one(model.NameOutput), 1); err != nil {
			return nil, err
		}
	}
	m := &model.Model{Config: cfg, Weights: w}
	if err := m.Validate(false); err != nil {
		return nil, err
	}
	return m, nil
}
