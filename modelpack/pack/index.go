package pack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

// maxConfigBytes bounds config.json, a few kilobytes in real models.
const maxConfigBytes = 16 << 20

// IndexOptions configures Index.
type IndexOptions struct {
	// Base is put in front of every file name in the manifest's pieces: ""
	// keeps them relative (the manifest then lives beside the model's
	// files), or an URL such as https://huggingface.co/ORG/MODEL/resolve/main/.
	Base string
	// Progress, when set, is called as the shards are hashed.
	Progress func(done, total int64)
}

// Index builds a manifest that copies no weights: each shard is a list of
// byte ranges inside the unmodified safetensors files that src reads (a
// local directory or an HTTP base), grouped exactly like a pack's (core,
// layer, one per (layer, expert)), so a client can stream routed experts
// straight from an existing model repository with Range requests. Every
// shard is read once to compute its sha256.
func Index(ctx context.Context, src shard.Source, o IndexOptions) (*manifest.Manifest, error) {
	cfgJSON, err := shard.ReadFile(ctx, src, "config.json", maxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	files, err := safetensorsFiles(ctx, src)
	if err != nil {
		return nil, err
	}
	var infos []safetensors.Info
	for _, f := range files {
		r, err := safetensors.NewReaderUnsized(readerAt{ctx, src, f}, f)
		if err != nil {
			return nil, err
		}
		for _, n := range r.Names() {
			in, _ := r.Info(n)
			infos = append(infos, in)
		}
	}
	res, err := hf.Resolve(cfgJSON, infos)
	if err != nil {
		return nil, err
	}
	if len(res.Fused) > 0 {
		// A manifest on disk has no way to say how to rearrange bytes.
		return nil, fmt.Errorf("config.json: model_type %s stores its experts fused (gate_up_proj), which an index cannot point into: import the model, or load it as hf:ORG/REPO", res.Config.Arch)
	}
	for _, in := range res.ZeroOnly {
		b, err := src.Read(ctx, in.File, in.FileOffset, in.Size())
		if err != nil {
			return nil, err
		}
		dt, err := in.TensorDType()
		if err != nil {
			return nil, err
		}
		if err := hf.CheckZero(in, &tensor.Tensor{Name: in.Name, DType: dt, Shape: in.Shape, Data: b}); err != nil {
			return nil, err
		}
	}
	m := &manifest.Manifest{Format: manifest.Format, Version: manifest.Version, Model: res.Config, Quant: "source"}
	if m.Tokenizer, m.ChatTemplate, err = indexTokenizer(ctx, src, o.Base, res.Config); err != nil {
		return nil, err
	}
	specs := res.Config.Spec()
	var total, done int64
	for _, sp := range specs {
		total += res.Tensors[sp.Name].Size()
	}
	for _, g := range manifest.Groups(specs) {
		s := manifest.Shard{ID: manifest.GroupID(g[0]), Kind: manifest.GroupKind(g[0]), Layer: g[0].Layer, Expert: g[0].Expert}
		h := sha256.New()
		for _, sp := range g {
			in := res.Tensors[sp.Name]
			b, err := src.Read(ctx, in.File, in.FileOffset, in.Size())
			if err != nil {
				return nil, fmt.Errorf("tensor %s: %w", in.Name, err)
			}
			h.Write(b)
			dt, _ := in.TensorDType()
			s.Tensors = append(s.Tensors, manifest.Tensor{Name: sp.Name, DType: dt.String(), Shape: sp.Shape, Offset: s.Size, Length: in.Size()})
			s.Pieces = append(s.Pieces, manifest.Piece{File: o.Base + in.File, Offset: in.FileOffset, Length: in.Size()})
			s.Size += in.Size()
			done += in.Size()
			if o.Progress != nil {
				o.Progress(done, total)
			}
		}
		s.SHA256 = hex.EncodeToString(h.Sum(nil))
		m.Shards = append(m.Shards, s)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("internal error: the index does not validate: %w", err)
	}
	return m, nil
}

// safetensorsFiles lists the checkpoint's files: the index's, or the
// single model.safetensors.
func safetensorsFiles(ctx context.Context, src shard.Source) ([]string, error) {
	raw, err := shard.ReadFile(ctx, src, safetensors.IndexFile, safetensors.MaxIndexBytes)
	if err != nil {
		if _, err2 := src.Read(ctx, safetensors.SingleFile, 0, 8); err2 != nil {
			return nil, fmt.Errorf("neither %s nor %s could be read: %v; %v", safetensors.IndexFile, safetensors.SingleFile, err, err2)
		}
		return []string{safetensors.SingleFile}, nil
	}
	weightMap, err := safetensors.ParseIndex(safetensors.IndexFile, raw)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, f := range weightMap {
		files = append(files, f)
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

// maxTemplate bounds chat_template.jinja; real templates are tens of KB.
const maxTemplate = 4 << 20

func indexTokenizer(ctx context.Context, src shard.Source, base string, cfg model.Config) (manifest.Tokenizer, string, error) {
	mt := manifest.Tokenizer{Kind: "hf", File: base + "tokenizer.json"}
	tj, err := shard.ReadFile(ctx, src, "tokenizer.json", manifest.MaxFileSize)
	if err != nil {
		return mt, "", fmt.Errorf("tokenizer.json: %w", err)
	}
	h := sha256.Sum256(tj)
	mt.SHA256, mt.Size = hex.EncodeToString(h[:]), int64(len(tj))
	tc, err := shard.ReadFile(ctx, src, "tokenizer_config.json", manifest.MaxFileSize)
	var chat string
	if err == nil {
		h := sha256.Sum256(tc)
		mt.Config, mt.ConfigSHA256, mt.ConfigSize = base+"tokenizer_config.json", hex.EncodeToString(h[:]), int64(len(tc))
		var c struct {
			ChatTemplate json.RawMessage `json:"chat_template"`
		}
		if json.Unmarshal(tc, &c) == nil {
			json.Unmarshal(c.ChatTemplate, &chat) // a string template; named templates are left out
		}
	}
	// chat_template.jinja (gpt-oss's harmony template is there) wins over
	// tokenizer_config.json's, as in transformers.
	if t, err := shard.ReadFile(ctx, src, "chat_template.jinja", maxTemplate); err == nil && utf8.Valid(t) {
		chat = string(t)
	}
	tok, err := tokenizer.LoadHF(tj, tc)
	if err != nil {
		return mt, "", fmt.Errorf("tokenizer.json: %w", err)
	}
	mt.AddBOS = tok.AddsBOS() && cfg.BOS >= 0
	return mt, chat, nil
}

// readerAt adapts one file of a shard.Source to io.ReaderAt.
type readerAt struct {
	ctx  context.Context
	src  shard.Source
	file string
}

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	b, err := r.src.Read(r.ctx, r.file, off, int64(len(p)))
	n := copy(p, b)
	if err == nil && n < len(p) {
		err = errors.New("short read")
	}
	return n, err
}
