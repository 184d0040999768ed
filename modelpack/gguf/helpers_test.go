package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/model"
)

// raw builds GGUF bytes field by field, so tests can write headers the
// Writer would refuse to produce.
type raw struct{ bytes.Buffer }

func (r *raw) u8(x uint8) *raw   { r.WriteByte(x); return r }
func (r *raw) u32(x uint32) *raw { binary.Write(r, binary.LittleEndian, x); return r }
func (r *raw) u64(x uint64) *raw { binary.Write(r, binary.LittleEndian, x); return r }
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.WriteString(s); return r }

// header writes magic, version and the two counts.
func (r *raw) header(version uint32, tensors, kvs uint64) *raw {
	r.WriteString("GGUF")
	return r.u32(version).u64(tensors).u64(kvs)
}

// tensorInfo writes one tensor description.
func (r *raw) tensorInfo(name string, dims []uint64, typ GGMLType, off uint64) *raw {
	r.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	return r.u32(uint32(typ)).u64(off)
}

// pad zero-fills to a multiple of a.
func (r *raw) pad(a int) *raw {
	for r.Len()%a != 0 {
		r.WriteByte(0)
	}
	return r
}

// encode runs Write and fails the test on error.
func encode(t testing.TB, kv []KV, tensors []WTensor) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, kv, tensors); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// parse runs NewReader and fails the test on error.
func parse(t testing.TB, b []byte) *File {
	t.Helper()
	f, err := NewReader(bytes.NewReader(b), int64(len(b)), "test.gguf")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// wantError fails unless err mentions every fragment.
func wantError(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", fragments)
	}
	for _, s := range fragments {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not mention %q", err, s)
		}
	}
}

// ramp returns n distinct, exactly representable values.
func ramp(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%13-6) * scale
	}
	return v
}

// spec describes a synthetic model for the mapping tests.
type spec struct {
	arch       string
	experts    int  // 0: dense FFN
	legacy     bool // per-expert tensors (older Mixtral files) instead of stacked
	shared     bool // qwen2moe shared expert and gate
	bias       bool // q/k/v biases
	qkNorm     model.QKNorm
	tied       bool
	set        map[string]Value // replaces or adds metadata
	headDim    int              // 0: tHead
	extraT     []WTensor
	dropTensor string
}

// Synthetic model sizes: dim 8, 2 heads of 4, 1 kv head, vocab 16, 2
// layers, dense width 12, expert width 6, shared width 10.
const (
	tDim, tHeads, tKV, tHead, tVocab, tLayers = 8, 2, 1, 4, 16, 2
	tDense, tExpert, tShared                  = 12, 6, 10
)

// model writes a synthetic GGUF for s with f32 weights.
func (s spec) model(t testing.TB) []byte {
	a, hd := s.arch, s.headDim
	if hd == 0 {
		hd = tHead
	}
	kv := []KV{
		{"general.architecture", Scalar(a)},
		{a + ".embedding_length", Scalar(uint32(tDim))},
		{a + ".block_count", Scalar(uint32(tLayers))},
		{a + ".attention.head_count", Scalar(uint32(tHeads))},
		{a + ".attention.head_count_kv", Scalar(uint32(tKV))},
		{a + ".context_length", Scalar(uint64(64))},
		{a + ".attention.layer_norm_rms_epsilon", Scalar(float32(1e-5))},
		{a + ".rope.freq_base", Scalar(float32(10000))},
		{"tokenizer.ggml.bos_token_id", Scalar(uint32(1))},
		{"tokenizer.ggml.eos_token_id", Scalar(uint32(2))},
	}
	if s.experts > 0 {
		kv = append(kv, KV{a + ".expert_count", Scalar(uint32(s.experts))}, KV{a + ".expert_used_count", Scalar(uint32(2))})
		if a == "llama" {
			kv = append(kv, KV{a + ".feed_forward_length", Scalar(uint32(tExpert))})
		} else {
			kv = append(kv, KV{a + ".expert_feed_forward_length", Scalar(uint32(tExpert))})
		}
		if s.shared {
			kv = append(kv, KV{a + ".expert_shared_feed_forward_length", Scalar(uint32(tShared))})
		}
	} else {
		kv = append(kv, KV{a + ".feed_forward_length", Scalar(uint32(tDense))})
	}
	for i := range kv {
		if v, ok := s.set[kv[i].Key]; ok {
			kv[i].Value = v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.set)) {
		if !slices.ContainsFunc(kv, func(e KV) bool { return e.Key == k }) {
			kv = append(kv, KV{k, s.set[k]})
		}
	}
	var ts []WTensor
	n := 0
	add := func(name string, dims ...int) {
		elems := 1
		for _, d := range dims {
			elems *= d
		}
		n++
		ts = append(ts, WTensor{Name: name, Type: TypeF32, Dims: dims, Values: ramp(elems, float32(n)/64)})
	}
	add("token_embd.weight", tDim, tVocab)
	add("output_norm.weight", tDim)
	if !s.tied {
		add("output.weight", tDim, tVocab)
	}
	for l := range tLayers {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", tDim)
		add(p+"attn_q.weight", tDim, tHeads*hd)
		add(p+"attn_k.weight", tDim, tKV*hd)
		add(p+"attn_v.weight", tDim, tKV*hd)
		add(p+"attn_output.weight", tHeads*hd, tDim)
		if s.bias {
			add(p+"attn_q.bias", tHeads*hd)
			add(p+"attn_k.bias", tKV*hd)
			add(p+"attn_v.bias", tKV*hd)
		}
		switch s.qkNorm {
		case model.QKNormHead:
			add(p+"attn_q_norm.weight", hd)
			add(p+"attn_k_norm.weight", hd)
		case model.QKNormFull:
			add(p+"attn_q_norm.weight", tHeads*hd)
			add(p+"attn_k_norm.weight", tKV*hd)
		}
		add(p+"ffn_norm.weight", tDim)
		if s.experts == 0 {
			add(p+"ffn_gate.weight", tDim, tDense)
			add(p+"ffn_up.weight", tDim, tDense)
			add(p+"ffn_down.weight", tDense, tDim)
			continue
		}
		add(p+"ffn_gate_inp.weight", tDim, s.experts)
		if s.legacy {
			for e := range s.experts {
				add(fmt.Sprintf("%sffn_gate.%d.weight", p, e), tDim, tExpert)
				add(fmt.Sprintf("%sffn_up.%d.weight", p, e), tDim, tExpert)
				add(fmt.Sprintf("%sffn_down.%d.weight", p, e), tExpert, tDim)
			}
		} else {
			add(p+"ffn_gate_exps.weight", tDim, tExpert, s.experts)
			add(p+"ffn_up_exps.weight", tDim, tExpert, s.experts)
			add(p+"ffn_down_exps.weight", tExpert, tDim, s.experts)
		}
		if s.shared {
			add(p+"ffn_gate_inp_shexp.weight", tDim)
			add(p+"ffn_gate_shexp.weight", tDim, tShared)
			add(p+"ffn_up_shexp.weight", tDim, tShared)
			add(p+"ffn_down_shexp.weight", tShared, tDim)
		}
	}
	ts = append(ts, s.extraT...)
	if s.dropTensor != "" {
		for i := range ts {
			if ts[i].Name == s.dropTensor {
				ts = append(ts[:i], ts[i+1:]...)
				break
			}
		}
	}
	return encode(t, kv, ts)
}
