package importer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/gguf"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestGptOssGGUF takes a synthetic MXFP4 gpt-oss checkpoint through
// GGUF: written as llama.cpp's "gpt-oss" (experts MXFP4), read back as the
// checkpoint's config except YaRN's truncate (llama.cpp rounds the
// correction range), imported into a pack whose experts are MXFP4 with
// the checkpoint's values exactly. At f32 every other tensor is exact too,
// the pack generates the checkpoint's greedy tokens (and those of the
// checkpoint computed with llama.cpp's rounded YaRN), and the GGUF
// written from a pack imported from the checkpoint (HF → pack → GGUF) is
// byte for byte the one written from the checkpoint.
func TestGptOssGGUF(t *testing.T) {
	o := synth.Default("gpt_oss")
	o.Arch, o.Vocab, o.Seed = "gpt_oss", 300, 3
	hfDir, src := synthHF(t, o)
	if !src.Config.RopeScale.NoTruncate {
		t.Fatal("the synthetic checkpoint should have truncate: false, as gpt-oss's does")
	}
	rounded := *src
	rounded.Config.RopeScale = new(*src.Config.RopeScale)
	rounded.Config.RopeScale.NoTruncate = false
	for _, typ := range []gguf.GGMLType{gguf.TypeF32, gguf.TypeQ8_0} {
		t.Run(typ.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := synth.WriteGGUF(path, o, typ); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cfg, err := gguf.Config(f)
			if err != nil {
				t.Fatal(err)
			}
			want := rounded.Config
			cfg.Arch, want.Arch, want.BOS, want.EOS = "", "", 1, []int{2}
			if g, w := jsonOf(t, cfg), jsonOf(t, want); g != w {
				t.Fatalf("config read back:\n%s\nwant\n%s", g, w)
			}
			for _, info := range f.Tensors() {
				if strings.HasSuffix(info.Name, "_exps.weight") && info.Type != gguf.TypeMXFP4 {
					t.Errorf("%s is %s, want mxfp4", info.Name, info.Type)
				}
			}
			_, p := importPack(t, path, pack.Options{})
			for _, sp := range cfg.Spec() {
				if sp.Expert < 0 && typ != gguf.TypeF32 {
					continue
				}
				pt := packTensor(t, p, sp)
				if sp.Expert >= 0 && pt.DType != tensor.MXFP4 {
					t.Fatalf("%s: pack has %s, want mxfp4", sp.Name, pt.DType)
				}
				got, err := pt.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				w, err := src.Weights[sp.Name].Float32s()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, w) {
					t.Fatalf("%s: the pack from the GGUF differs from the checkpoint", sp.Name)
				}
			}
			if typ != gguf.TypeF32 {
				return // q8_0's rounding may flip a synthetic model's near-ties
			}
			_, hp := importPack(t, hfDir, pack.Options{Quant: tensor.F32})
			hm, err := hp.Whole(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var fromPack bytes.Buffer
			read := func(name string) ([]float32, error) { return hm.Weights[name].Float32s() }
			mo := gguf.ModelOptions{Type: typ, Vocab: synth.SentenceVocab(o.Vocab), Name: "synthetic gpt_oss", RoundYaRN: true}
			if err := gguf.WriteModel(&fromPack, hm.Config, read, mo); err != nil {
				t.Fatal(err)
			}
			if direct, err := os.ReadFile(path); err != nil || !bytes.Equal(direct, fromPack.Bytes()) {
				t.Fatalf("the GGUF written from the pack differs from the one written from the checkpoint (%d and %d bytes, %v)", fromPack.Len(), len(direct), err)
			}
			m, err := p.Whole(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// Past the sliding window (8).
			prompt := []int{1, 299, 17, 42, 260, 5, 77, 101, 33}
			got := greedy(t, m, prompt, 16)
			if w := greedy(t, &rounded, prompt, 16); !slices.Equal(got, w) {
				t.Fatalf("greedy tokens of the pack from the GGUF %v differ from the checkpoint's with rounded YaRN %v", got, w)
			}
			if w := greedy(t, src, prompt, 16); !slices.Equal(got, w) {
				t.Fatalf("greedy tokens of the pack from the GGUF %v differ from the checkpoint's %v", got, w)
			}
		})
	}
}

// TestChatTemplateJinja: an HF directory's chat_template.jinja (as
// gpt-oss ships its harmony template) is the pack's chat template, in
// preference to tokenizer_config.json's; a huge one is refused.
func TestChatTemplateJinja(t *testing.T) {
	dir := t.TempDir()
	if err := synth.Write(dir, synth.Default("gpt_oss")); err != nil {
		t.Fatal(err)
	}
	tpl, err := os.ReadFile(filepath.Join("..", "..", "runtime", "chat", "testdata", "gpt-oss.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "chat_template.jinja"), tpl, 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	if in.ChatTemplate != string(tpl) {
		t.Fatalf("chat template %.60q…, want chat_template.jinja's", in.ChatTemplate)
	}
	if err := os.WriteFile(filepath.Join(dir, "chat_template.jinja"), bytes.Repeat([]byte("x"), maxTemplate+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, ""); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a %d-byte template: %v", maxTemplate+1, err)
	}
}
