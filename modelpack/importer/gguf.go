package importer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/moderuntime/mode/modelpack/gguf"
	"github.com/moderuntime/mode/modelpack/source"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

func openGGUF(path string) (*Input, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	in, err := newGGUFInput(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return in, nil
}

// newGGUFInput maps f onto a model config and converts its tokenizer. Every
// tensor's type is checked here, so that a file the importer cannot convert
// fails before anything is written.
func newGGUFInput(f *gguf.File, path string) (*Input, error) {
	cfg, err := gguf.Config(f)
	if err != nil {
		return nil, err
	}
	srcs, err := gguf.Sources(f, cfg)
	if err != nil {
		return nil, err
	}
	s := &ggufSource{path: path, cfg: cfg, read: f.ReadRaw, where: make(map[string]ggufTensor, len(srcs))}
	for _, src := range srcs {
		info, _ := f.Tensor(src.Tensor) // Sources checked it is there
		d := keepFormat(info.Type, src.Shape[len(src.Shape)-1])
		if d == tensor.Invalid {
			return nil, fmt.Errorf("gguf: %s: tensor %s (for %s) is %s, which the importer cannot convert", path, src.Tensor, src.Canonical, info.Type)
		}
		s.where[src.Canonical] = ggufTensor{Source: src, format: d}
	}
	v, err := gguf.Tokenizer(f)
	if err != nil {
		return nil, err
	}
	tok, err := convertVocab(v, cfg)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: tokenizer: %w", path, err)
	}
	return &Input{Source: s, Tokenizer: tok, ChatTemplate: v.ChatTemplate, Kind: "gguf", close: f.Close}, nil
}

// keepFormat is the pack format a ggml type is kept in, for a matrix of
// cols columns: the plain types as they are; Q8_0, Q4_0 and Q4_K as our
// q8_0, q4_0 and q4_k, whose blocks hold the same numbers; Q4_1 as q4_k
// (the nearest of our formats; 4-bit blocks have little to lose), the wider
// ones as q8_0. Invalid means the type cannot be converted.
func keepFormat(t gguf.GGMLType, cols int) tensor.DType {
	switch t {
	case gguf.TypeF32:
		return tensor.F32
	case gguf.TypeF16:
		return tensor.F16
	case gguf.TypeBF16:
		return tensor.BF16
	case gguf.TypeQ8_0:
		return tensor.Q8_0
	case gguf.TypeQ4_0:
		return tensor.Q4_0
	case gguf.TypeMXFP4:
		return tensor.MXFP4 // the same codes and scales (gguf.MXFP4Blocks)
	case gguf.TypeQ4_K, gguf.TypeQ4_1:
		if tensor.CanQuantize(tensor.Q4_K, cols) {
			return tensor.Q4_K
		}
		return wide(cols)
	case gguf.TypeQ5_0, gguf.TypeQ5_1, gguf.TypeQ5_K, gguf.TypeQ6_K, gguf.TypeQ8_K, gguf.TypeQ2_K, gguf.TypeQ3_K:
		return wide(cols)
	}
	return tensor.Invalid
}

// wide is the format for values that need more than 4 bits: q8_0, or f16
// when the row is not a whole number of its blocks.
func wide(cols int) tensor.DType {
	if tensor.CanQuantize(tensor.Q8_0, cols) {
		return tensor.Q8_0
	}
	return tensor.F16
}

// maxCached bounds the whole GGUF tensors a ggufSource keeps for reads of
// their parts: three hold one layer's stacked gate, up and down experts,
// which pack.Write reads expert by expert, cycling through the three. The
// cost is holding those three stacks in memory.
const maxCached = 3

// ggufSource is a source.Source reading a GGUF file tensor by tensor. It is
// safe for concurrent use.
type ggufSource struct {
	path  string
	cfg   model.Config
	read  func(name string) (gguf.RawTensor, error) // the file's ReadRaw; tests count calls
	where map[string]ggufTensor                     // by canonical name

	mu    sync.Mutex
	cache []gguf.RawTensor // most recently used last
}

// ggufTensor is where a canonical tensor is and the format it is kept in.
type ggufTensor struct {
	gguf.Source
	format tensor.DType
}

var (
	_ source.Formatter = (*ggufSource)(nil)
	_ source.Fixed     = (*ggufSource)(nil)
)

// FixedFormat keeps MXFP4 tensors (gpt-oss's experts) MXFP4 whatever
// quantisation the pack asks for, as the HF source keeps the checkpoint's.
func (s *ggufSource) FixedFormat(name string) (tensor.DType, bool) {
	if s.where[name].format == tensor.MXFP4 {
		return tensor.MXFP4, true
	}
	return tensor.Invalid, false
}

func (s *ggufSource) Config() model.Config { return s.cfg }

// Format is the format Read returns name in when that loses nothing, and
// otherwise the format pack.Write should keep it in: see keepFormat.
func (s *ggufSource) Format(name string) tensor.DType { return s.where[name].format }

// Read returns rows [row0, row0+rows) of name (all of it when rows is 0).
// F32, F16 and BF16 come as stored and Q8_0, Q4_0, Q4_K (rows of whole
// super-blocks) and MXFP4 re-laid out as q8_0, q4_0, q4_k and mxfp4, bit
// for bit; every other type comes dequantised to f32, so that
// pack.Write quantises it once, to whatever format it is asked for. The
// tensor may share memory with the source's cache and must not be modified.
func (s *ggufSource) Read(name string, row0, rows int) (*tensor.Tensor, error) {
	loc, ok := s.where[name]
	if !ok {
		return nil, fmt.Errorf("gguf: %s: the model has no tensor %s", s.path, name)
	}
	raw, err := s.raw(loc.Tensor, loc.Expert >= 0 || rows != 0)
	if err != nil {
		return nil, err
	}
	if loc.Expert >= 0 {
		if raw, err = gguf.ExpertSlice(raw, loc.Expert); err != nil {
			return nil, fmt.Errorf("%s: %w", s.path, err)
		}
	}
	shape := slices.Clone(loc.Shape)
	if rows != 0 {
		if len(shape) != 2 || row0 < 0 || rows < 0 || row0+rows > shape[0] {
			return nil, fmt.Errorf("gguf: %s: tensor %s: rows [%d, %d) outside shape %v", s.path, name, row0, row0+rows, shape)
		}
		rb, err := raw.Type.RowBytes(shape[1])
		if err != nil {
			return nil, fmt.Errorf("gguf: %s: tensor %s: %w", s.path, raw.Name, err)
		}
		// ggml stores rows whole and in order, so a row range is a byte range.
		raw.Data = raw.Data[row0*rb : (row0+rows)*rb]
		raw.Dims = []int{shape[1], rows}
		shape[0] = rows
	}
	t, err := toTensor(name, raw, shape)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: tensor %s: %w", s.path, raw.Name, err)
	}
	return t, nil
}

// raw reads a GGUF tensor whole. With cache set (a stack of experts, or a
// tensor read in row chunks) it is served from and kept in a small cache,
// so that reading all experts of a stack reads the stack once.
func (s *ggufSource) raw(name string, cache bool) (gguf.RawTensor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.cache {
		if r.Name == name {
			s.cache = append(slices.Delete(s.cache, i, i+1), r)
			return r, nil
		}
	}
	r, err := s.read(name)
	if err != nil || !cache {
		return r, err
	}
	if len(s.cache) == maxCached {
		s.cache = slices.Delete(s.cache, 0, 1)
	}
	s.cache = append(s.cache, r)
	return r, nil
}

// toTensor converts a GGUF tensor (or rows of one) to the format Read
// returns, with the canonical name and shape.
func toTensor(name string, raw gguf.RawTensor, shape []int) (*tensor.Tensor, error) {
	rows, cols := 1, shape[len(shape)-1]
	for _, d := range shape[:len(shape)-1] {
		rows *= d
	}
	switch raw.Type {
	case gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16:
		// Same element order and byte encoding as ours.
		t := &tensor.Tensor{Name: name, DType: keepFormat(raw.Type, cols), Shape: shape, Data: raw.Data}
		if err := t.Check(); err != nil {
			return nil, err
		}
		// By the exponent bits, as the HF reader checks: decoding the
		// whole tensor to float32 first held a second, wider copy.
		if i, v, bad := tensor.FirstNonFinite(t); bad {
			return nil, fmt.Errorf("tensor %s: element %d is %v", name, i, v)
		}
		return t, nil
	case gguf.TypeQ8_0, gguf.TypeQ4_0:
		// The blocks as they are, only the scales moved apart from the
		// quants: unpacking each quant to a byte and packing it again
		// took most of a GGUF's load.
		if _, err := gguf.CheckBlocks(raw, raw.Type); err != nil {
			return nil, err
		}
		d := tensor.Q8_0
		if raw.Type == gguf.TypeQ4_0 {
			d = tensor.Q4_0
		}
		return tensor.FromInterleaved(name, d, rows, cols, raw.Data)
	case gguf.TypeMXFP4:
		scales, blocks, err := gguf.MXFP4Blocks(raw)
		if err != nil {
			return nil, err
		}
		return tensor.MXFP4FromBlocks(name, rows, cols, scales, blocks)
	case gguf.TypeQ4_K:
		// Every number of ggml's super-blocks fits q4_k (6-bit scales
		// and minimums in its bytes): re-laid out, not requantised.
		if keepFormat(raw.Type, cols) == tensor.Q4_K {
			if _, err := gguf.CheckBlocks(raw, raw.Type); err != nil {
				return nil, err
			}
			return tensor.Q4_KFromGGML(name, rows, cols, raw.Data)
		}
	}
	v, err := gguf.DequantizeF32(raw)
	if err != nil {
		return nil, err
	}
	if err := tensor.CheckFinite(name, v); err != nil {
		return nil, err
	}
	return tensor.FromF32(name, shape, v), nil
}

// llama.cpp's token types (tokenizer.ggml.token_type).
const (
	tokenControl     = 3
	tokenUserDefined = 4
)

// convertVocab turns a GGUF vocabulary into tokenizer files the runtime
// loads: a llama2.c tokenizer.bin for SentencePiece ("llama") vocabularies,
// a tokenizer.json and tokenizer_config.json for byte-level BPE ("gpt2").
func convertVocab(v *gguf.Vocab, cfg model.Config) (source.Tokenizer, error) {
	switch v.Model {
	case "llama":
		b, err := llama2cFile(v, cfg.Vocab)
		if err != nil {
			return source.Tokenizer{}, err
		}
		addBOS := v.AddBOS == nil || *v.AddBOS // SentencePiece models add BOS unless told not to
		return source.Tokenizer{Kind: "llama2c", File: b, AddBOS: addBOS && cfg.BOS >= 0}, nil
	case "gpt2":
		tj, tc, err := hfFiles(v)
		if err != nil {
			return source.Tokenizer{}, err
		}
		tok, err := tokenizer.LoadHF(tj, tc)
		if err != nil {
			return source.Tokenizer{}, fmt.Errorf("the converted tokenizer.json does not load: %w", err)
		}
		if tok.VocabSize() > cfg.Vocab {
			return source.Tokenizer{}, fmt.Errorf("%d tokens but the model's vocabulary is %d", tok.VocabSize(), cfg.Vocab)
		}
		return source.Tokenizer{Kind: "hf", File: tj, Config: tc, AddBOS: tok.AddsBOS() && cfg.BOS >= 0}, nil
	}
	return source.Tokenizer{}, fmt.Errorf("tokenizer model %q is not supported (llama, gpt2)", v.Model)
}

// llama2cFile writes v in llama2.c's tokenizer.bin format, as llama2.c's
// tokenizer.py exports a SentencePiece model: "▁" becomes " ", BOS and EOS
// become "\n<s>\n" and "\n</s>\n", byte tokens stay "<0xXX>". The format
// fixes <unk>, <s>, </s> at ids 0 to 2 and the byte tokens at 3 to 258,
// which the runtime's encoder relies on, so any other layout is refused.
func llama2cFile(v *gguf.Vocab, vocab int) ([]byte, error) {
	if len(v.Tokens) != vocab {
		return nil, fmt.Errorf("%d tokens but the model's vocabulary is %d", len(v.Tokens), vocab)
	}
	if v.Scores == nil {
		return nil, fmt.Errorf("SentencePiece vocabulary without scores (tokenizer.ggml.scores)")
	}
	const byteOffset = 3
	if len(v.Tokens) < byteOffset+256 {
		return nil, fmt.Errorf("unsupported tokenizer layout: %d tokens, fewer than the llama2.c format's 3 + 256 byte tokens", len(v.Tokens))
	}
	for b := range 256 {
		if want := fmt.Sprintf("<0x%02X>", b); v.Tokens[byteOffset+b] != want {
			return nil, fmt.Errorf("unsupported tokenizer layout: token %d is %q, but the llama2.c format needs byte token %s there (ids 3 to 258)", byteOffset+b, v.Tokens[byteOffset+b], want)
		}
	}
	if v.BOS >= 0 && v.BOS != 1 || v.EOS >= 0 && v.EOS != 2 {
		return nil, fmt.Errorf("unsupported tokenizer layout: BOS %d and EOS %d, but the llama2.c format fixes them at 1 and 2", v.BOS, v.EOS)
	}
	pieces := make([]string, len(v.Tokens))
	maxLen := 1
	for i, tok := range v.Tokens {
		switch i {
		case 1:
			tok = "\n<s>\n"
		case 2:
			tok = "\n</s>\n"
		}
		pieces[i] = strings.ReplaceAll(tok, "▁", " ")
		maxLen = max(maxLen, len(pieces[i]))
	}
	var buf bytes.Buffer
	le := func(x uint32) { buf.Write(binary.LittleEndian.AppendUint32(nil, x)) }
	le(uint32(maxLen))
	for i, p := range pieces {
		le(math.Float32bits(v.Scores[i]))
		le(uint32(len(p)))
		buf.WriteString(p)
	}
	if _, err := tokenizer.LoadLlama2C(bytes.NewReader(buf.Bytes()), vocab); err != nil {
		return nil, fmt.Errorf("the converted llama2.c tokenizer does not load: %w", err)
	}
	return buf.Bytes(), nil
}

// Split patterns of the byte-level BPE pre-tokenizers GGUF files name in
// tokenizer.ggml.pre, as their tokenizer.json files spell them.
const (
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// o200k (gpt-oss, GPT-4o): llama.cpp's "gpt-4o" pre-tokenizer.
	o200kPattern = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// hfFiles builds a minimal tokenizer.json (BPE model, byte-level pre-
// tokenizer and decoder, control and user-defined tokens as added tokens)
// and tokenizer_config.json (BOS, EOS, add_bos_token, chat template) for a
// byte-level BPE vocabulary.
func hfFiles(v *gguf.Vocab) (tokenizerJSON, configJSON []byte, err error) {
	if v.Merges == nil {
		return nil, nil, fmt.Errorf("byte-level BPE vocabulary without merges (tokenizer.ggml.merges)")
	}
	type obj = map[string]any
	byteLevel := func(useRegex bool) obj {
		// No prefix space: llama.cpp adds none to byte-level BPE input.
		return obj{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": useRegex}
	}
	split := func(re string) obj {
		return obj{"type": "Split", "pattern": obj{"Regex": re}, "behavior": "Isolated", "invert": false}
	}
	var pre obj
	ignoreMerges := false
	switch v.Pre {
	case "gpt-2", "":
		// Files without tokenizer.ggml.pre predate it; GPT-2's split is
		// what HF's ByteLevel does by default.
		pre = byteLevel(true)
	case "llama-bpe", "llama3":
		pre = obj{"type": "Sequence", "pretokenizers": []obj{split(llama3Pattern), byteLevel(false)}}
		ignoreMerges = true // as Llama 3's tokenizer.json, and llama.cpp for this pre-tokenizer
	case "qwen2":
		pre = obj{"type": "Sequence", "pretokenizers": []obj{split(qwen2Pattern), byteLevel(false)}}
	case "gpt-4o":
		pre = obj{"type": "Sequence", "pretokenizers": []obj{split(o200kPattern), byteLevel(false)}}
	default:
		return nil, nil, fmt.Errorf("byte-level BPE pre-tokenizer %q (tokenizer.ggml.pre) is not supported (gpt-2, llama-bpe, qwen2, gpt-4o)", v.Pre)
	}
	vocab := make(map[string]int, len(v.Tokens))
	var added []obj
	for id, tok := range v.Tokens {
		if prev, dup := vocab[tok]; dup {
			return nil, nil, fmt.Errorf("token %d %q repeats token %d", id, tok, prev)
		}
		vocab[tok] = id
		if v.TokenTypes == nil {
			continue
		}
		if tt := v.TokenTypes[id]; tt == tokenControl || tt == tokenUserDefined {
			added = append(added, obj{"id": id, "content": tok, "single_word": false, "lstrip": false, "rstrip": false,
				"normalized": false, "special": tt == tokenControl})
		}
	}
	merges := make([][2]string, len(v.Merges))
	for i, m := range v.Merges {
		// Split at the first space after the first byte, as llama.cpp does,
		// so that a merge of a space token (" " in some vocabularies) parses.
		j := 1 + strings.IndexByte(m[1:], ' ')
		merges[i] = [2]string{m[:j], m[j+1:]}
	}
	tj := obj{
		"version":        "1.0",
		"added_tokens":   added,
		"normalizer":     nil,
		"pre_tokenizer":  pre,
		"post_processor": nil,
		"decoder":        obj{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": obj{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil, "end_of_word_suffix": nil,
			"fuse_unk": false, "byte_fallback": false, "ignore_merges": ignoreMerges, "vocab": vocab, "merges": merges},
	}
	// Byte-level BPE models prepend no BOS unless the file says so (Llama 3
	// files do, Qwen2 files do not).
	tc := obj{"add_bos_token": v.AddBOS != nil && *v.AddBOS}
	if v.BOS >= 0 {
		tc["bos_token"] = v.Tokens[v.BOS]
	}
	if v.EOS >= 0 {
		tc["eos_token"] = v.Tokens[v.EOS]
	}
	if v.ChatTemplate != "" {
		tc["chat_template"] = v.ChatTemplate
	}
	if tokenizerJSON, err = marshal(tj); err != nil {
		return nil, nil, err
	}
	if configJSON, err = marshal(tc); err != nil {
		return nil, nil, err
	}
	return tokenizerJSON, configJSON, nil
}

// marshal encodes x as JSON without escaping <, > and &, which fill
// special tokens' names.
func marshal(x any) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(x); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
