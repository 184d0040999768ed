package hf_test

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

func TestLoadErrors(t *testing.T) {
	const gate0 = "model.layers.0.mlp.gate_proj.weight"
	tests := []struct {
		name  string
		arch  string
		opts  func(*synth.Options)
		setup func(t *testing.T, dir string)
		want  []string
	}{
		{"missing tensor", "llama", nil, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) { delete(ts, "model.layers.1.self_attn.k_proj.weight") })
		}, []string{`missing tensor "model.layers.1.self_attn.k_proj.weight"`, "layers.1.wk"}},
		{"missing expert", "mixtral", nil, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) { delete(ts, "model.layers.0.block_sparse_moe.experts.2.w3.weight") })
		}, []string{`missing tensor "model.layers.0.block_sparse_moe.experts.2.w3.weight"`}},
		{"NaN weight", "llama", nil, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) {
				binary.LittleEndian.PutUint32(ts[gate0].Data[12:], math.Float32bits(float32(math.NaN())))
			})
		}, []string{safetensors.SingleFile, `tensor "` + gate0 + `": element 3 is NaN`}},
		{"Inf in bf16", "olmoe", func(o *synth.Options) { o.DType = tensor.BF16 }, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) {
				binary.LittleEndian.PutUint16(ts["model.norm.weight"].Data[2:], 0xff80)
			})
		}, []string{`tensor "model.norm.weight": element 1 is -Inf`}},
		{"Inf in f16", "qwen3_moe", func(o *synth.Options) { o.DType = tensor.F16 }, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) {
				binary.LittleEndian.PutUint16(ts["model.layers.2.mlp.gate.weight"].Data, 0x7c00)
			})
		}, []string{`tensor "model.layers.2.mlp.gate.weight": element 0 is +Inf`}},
		{"extra tensor", "qwen2_moe", nil, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) {
				ts["model.layers.0.self_attn.rotary_proj.weight"] = f32("model.layers.0.self_attn.rotary_proj.weight", 0, 4)
			})
		}, []string{safetensors.SingleFile, `tensor "model.layers.0.self_attn.rotary_proj.weight" has no place in the qwen2_moe model`}},
		{"expert beyond num_experts", "olmoe", nil, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) {
				ts["model.layers.0.mlp.experts.8.up_proj.weight"] = f32("x", 0, 48, 64)
			})
		}, []string{`tensor "model.layers.0.mlp.experts.8.up_proj.weight" has no place`}},
		{"wrong shape", "llama", nil, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) {
				ts["model.layers.0.self_attn.q_proj.weight"] = f32("q", 0, 64, 32)
			})
		}, []string{`tensor "model.layers.0.self_attn.q_proj.weight": shape [64 32], want [64 64] for layers.0.wq`}},
		{"unsupported dtype", "llama", func(o *synth.Options) { o.DType = tensor.BF16 }, func(t *testing.T, dir string) {
			// Respell the first tensor's dtype as I16, which has the same size.
			path := filepath.Join(dir, safetensors.SingleFile)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			patched := strings.Replace(string(raw), `"dtype":"BF16"`, `"dtype":"I16" `, 1)
			if err := os.WriteFile(path, []byte(patched), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{safetensors.SingleFile, `tensor "lm_head.weight"`, "dtype I16 is not supported"}},
		{"nonzero o_proj bias", "llama", nil, func(t *testing.T, dir string) {
			withAttentionBias(t, dir, 0.5)
		}, []string{`tensor "model.layers.0.self_attn.o_proj.bias"`, "not zero"}},
		{"mode has no implicit tying", "mode", nil, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) { delete(ts, "output") })
		}, []string{`missing tensor "output"`}},
		{"mode extra tensor", "mode", nil, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) { ts["layers.0.experts.4.up"] = f32("x", 0, 8, 64) })
		}, []string{`tensor "layers.0.experts.4.up" has no place in the mode model`}},
		{"unknown model_type", "llama", nil, func(t *testing.T, dir string) {
			editConfig(t, dir, set("model_type", "falcon"))
		}, []string{"config.json", `model_type "falcon" is not supported`}},
		{"top_k above experts", "mixtral", nil, func(t *testing.T, dir string) {
			editConfig(t, dir, set("num_experts_per_tok", 5))
		}, []string{"config.json", "num_experts_per_tok 5 exceeds the 4 experts"}},
		{"missing config", "llama", nil, func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "config.json"))
		}, []string{"config.json"}},
		{"missing weights", "llama", nil, func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, safetensors.SingleFile))
		}, []string{"neither model.safetensors nor model.safetensors.index.json"}},
		{"missing shard", "mixtral", func(o *synth.Options) { o.MaxShardBytes = 100 << 10 }, func(t *testing.T, dir string) {
			second, _ := filepath.Glob(filepath.Join(dir, "model-00002-of-*.safetensors"))
			if len(second) != 1 {
				t.Fatalf("no second shard: %v", second)
			}
			os.Remove(second[0])
		}, []string{safetensors.IndexFile, "model-00002-of-", "is missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := synthDir(t, tt.arch, tt.opts)
			tt.setup(t, dir)
			_, err := hf.Load(dir)
			wantErr(t, err, tt.want...)
		})
	}
}

// withAttentionBias turns a synth llama into one with attention_bias:
// q/k/v biases of 0.01 and an o_proj bias filled with oBias.
func withAttentionBias(t *testing.T, dir string, oBias float32) {
	t.Helper()
	editConfig(t, dir, set("attention_bias", true))
	editTensors(t, dir, func(ts map[string]*tensor.Tensor) {
		for l := range 2 {
			p := "model.layers." + string(rune('0'+l)) + ".self_attn."
			ts[p+"q_proj.bias"] = f32("q", 0.01, 64)
			ts[p+"k_proj.bias"] = f32("k", 0.01, 32)
			ts[p+"v_proj.bias"] = f32("v", 0.01, 32)
			ts[p+"o_proj.bias"] = f32("o", oBias, 64)
		}
	})
}

func TestLoadQuirks(t *testing.T) {
	tests := []struct {
		name  string
		arch  string
		setup func(t *testing.T, dir string)
		check func(t *testing.T, m *model.Model)
	}{
		{"zero o_proj bias is dropped", "llama", func(t *testing.T, dir string) {
			withAttentionBias(t, dir, 0)
		}, func(t *testing.T, m *model.Model) {
			if !m.Config.AttnBias || m.Weights["layers.1.bq"] == nil {
				t.Error("q/k/v biases not loaded")
			}
		}},
		{"absent lm_head ties the output", "mixtral", func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) { delete(ts, "lm_head.weight") })
		}, func(t *testing.T, m *model.Model) {
			if !m.Config.TiedOutput || m.Weights["output"] != nil {
				t.Errorf("TiedOutput %v", m.Config.TiedOutput)
			}
		}},
		{"lm_head ignored when tied", "llama", func(t *testing.T, dir string) {
			editConfig(t, dir, set("tie_word_embeddings", true))
		}, func(t *testing.T, m *model.Model) {
			if !m.Config.TiedOutput || m.Weights["output"] != nil {
				t.Errorf("TiedOutput %v", m.Config.TiedOutput)
			}
		}},
		{"rotary buffers ignored", "llama", func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) {
				ts["model.layers.0.self_attn.rotary_emb.inv_freq"] = f32("r", 1, 8)
			})
		}, func(t *testing.T, m *model.Model) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := synthDir(t, tt.arch, nil)
			tt.setup(t, dir)
			m, err := hf.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, m)
		})
	}
}

func TestFindPaths(t *testing.T) {
	dir := synthDir(t, "llama", nil)
	p := hf.FindPaths(dir)
	if p.Config != filepath.Join(dir, "config.json") || p.Tokenizer != filepath.Join(dir, "tokenizer.json") ||
		p.TokenizerConfig != filepath.Join(dir, "tokenizer_config.json") || p.GenerationConfig != filepath.Join(dir, "generation_config.json") {
		t.Errorf("%+v", p)
	}
}
