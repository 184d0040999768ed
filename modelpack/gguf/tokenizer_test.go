package gguf

import (
	"slices"
	"testing"
)

func tokenizerKVs() []KV {
	return []KV{
		{"tokenizer.ggml.model", Scalar("gpt2")},
		{"tokenizer.ggml.pre", Scalar("qwen2")},
		{"tokenizer.ggml.tokens", Array([]string{"a", "b", "ab", "<|end|>"})},
		{"tokenizer.ggml.token_type", Array([]int32{1, 1, 1, 3})},
		{"tokenizer.ggml.merges", Array([]string{"a b"})},
		{"tokenizer.ggml.eos_token_id", Scalar(uint32(3))},
		{"tokenizer.ggml.add_bos_token", Scalar(false)},
		{"tokenizer.chat_template", Scalar("{{ messages }}")},
	}
}

func TestTokenizer(t *testing.T) {
	v, err := Tokenizer(parse(t, encode(t, tokenizerKVs(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	if v.Model != "gpt2" || v.Pre != "qwen2" || !slices.Equal(v.Tokens, []string{"a", "b", "ab", "<|end|>"}) ||
		!slices.Equal(v.TokenTypes, []int32{1, 1, 1, 3}) || !slices.Equal(v.Merges, []string{"a b"}) || v.Scores != nil ||
		v.EOS != 3 || v.BOS != -1 || v.UNK != -1 || v.AddBOS == nil || *v.AddBOS || v.AddEOS != nil || v.ChatTemplate != "{{ messages }}" {
		t.Errorf("vocab %+v", v)
	}
	// SentencePiece: scores, no merges.
	kv := []KV{
		{"tokenizer.ggml.model", Scalar("llama")},
		{"tokenizer.ggml.tokens", Array([]string{"<unk>", "<s>", "▁a"})},
		{"tokenizer.ggml.scores", Array([]float32{0, 0, -1.5})},
		{"tokenizer.ggml.bos_token_id", Scalar(uint32(1))},
		{"tokenizer.ggml.unknown_token_id", Scalar(uint32(0))},
	}
	v, err = Tokenizer(parse(t, encode(t, kv, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if v.Model != "llama" || !slices.Equal(v.Scores, []float32{0, 0, -1.5}) || v.Merges != nil || v.BOS != 1 || v.UNK != 0 {
		t.Errorf("vocab %+v", v)
	}
}

func TestTokenizerErrors(t *testing.T) {
	tests := []struct {
		name string
		set  KV
		want string
	}{
		{"no model", KV{"tokenizer.ggml.model", Scalar(uint8(1))}, "tokenizer.ggml.model: is uint8"},
		{"tokens type", KV{"tokenizer.ggml.tokens", Array([]int32{1})}, "tokenizer.ggml.tokens"},
		{"types length", KV{"tokenizer.ggml.token_type", Array([]int32{1})}, "tokenizer.ggml.token_type"},
		{"scores length", KV{"tokenizer.ggml.scores", Array([]float32{1, 2})}, "tokenizer.ggml.scores"},
		{"merge", KV{"tokenizer.ggml.merges", Array([]string{"ab"})}, `tokenizer.ggml.merges: entry 0 "ab"`},
		{"eos", KV{"tokenizer.ggml.eos_token_id", Scalar(uint32(4))}, "tokenizer.ggml.eos_token_id: 4 outside the 4 tokens"},
		{"add bos", KV{"tokenizer.ggml.add_bos_token", Scalar(uint8(1))}, "tokenizer.ggml.add_bos_token: is uint8, want a bool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := tokenizerKVs()
			replaced := false
			for i := range kv {
				if kv[i].Key == tt.set.Key {
					kv[i], replaced = tt.set, true
				}
			}
			if !replaced {
				kv = append(kv, tt.set)
			}
			_, err := Tokenizer(parse(t, encode(t, kv, nil)))
			wantError(t, err, "gguf: test.gguf: ", tt.want)
		})
	}
}
