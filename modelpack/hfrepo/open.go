package hfrepo

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

// Limits on the small files, far above real ones.
const (
	maxConfigBytes = 16 << 20
	maxFileBytes   = manifest.MaxFileSize
	// maxZeroBytes bounds a tensor read to check it is all zeros (biases
	// a config cannot describe): real ones are a few kilobytes.
	maxZeroBytes = 64 << 20
)

// Options configure Open and Index.
type Options struct {
	// Endpoint is the hub's URL (DefaultEndpoint when empty): files are at
	// ENDPOINT/ORG/REPO/resolve/REVISION/FILE.
	Endpoint string
	// HTTP configures the requests: its Client (a default one when nil)
	// for the index, and all of it for the weights' Range requests.
	HTTP shard.HTTPOptions
	// Quant is the format weights are converted to as they load.
	Quant Quant
	// Keep, if set, keeps built indexes across visits (the browser's
	// storage): a location naming a commit whose index is kept is opened
	// with no request at all, a branch or tag with one (to resolve it).
	Keep Keeper
}

// Repo is an indexed repository: the manifest modelpack index would write,
// every piece an absolute URL at Commit, and the small files it read.
type Repo struct {
	Location Location
	Commit   string // what the revision resolved to (X-Repo-Commit); the revision itself when the server does not say
	// Pinned says the URLs name a commit (the server sent X-Repo-Commit,
	// or the revision was a commit hash), so their bytes cannot change and
	// may be cached by URL and range.
	Pinned    bool
	Base      string // ENDPOINT/ORG/REPO/resolve/COMMIT/
	Manifest  *manifest.Manifest
	Tokenizer []byte // tokenizer.json
	// TokenizerConfig is tokenizer_config.json, nil when the repository
	// has none.
	TokenizerConfig []byte
	// ChatTemplate is chat_template.jinja, nil when the repository has
	// none (gpt-oss ships its harmony template there, not in
	// tokenizer_config.json); transformers prefers it, and so does this.
	ChatTemplate []byte
	// fused lists, by shard ID, the bytes of each shard that hold tensors
	// in a checkpoint's fused layout (gpt-oss's experts), which Rearrange
	// turns into the manifest's.
	fused map[string][]fusedRegion
	// etags holds, by URL, the ETag of the answers that carried each
	// safetensors file's header: ranges of the file read later must carry
	// the same (ETag), so bytes of another version never mix in. A kept
	// index's are replaced when the CDN has moved on (etagChanged).
	mu    sync.RWMutex
	etags map[string]string

	endpoint string
	// FromKept says the index was built from one kept by Options.Keep on
	// an earlier visit, without reading the repository's files again.
	FromKept bool
	keep     *keptIndex // how the index is kept; nil: not kept
}

// ETag returns the ETag answers for url, a safetensors file of the
// repository, must carry: the one its header came with, or "" when the
// server sent none. It suits shard.HTTPOptions.ETag.
func (r *Repo) ETag(url string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.etags[normalURL(url)]
}

// HTTP returns o with ETag set to r.ETag, for the source reading the
// weights' ranges, and, for an index kept from an earlier visit,
// ETagChanged set to read the headers again once when the CDN's tag is no
// longer the kept one.
func (r *Repo) HTTP(o shard.HTTPOptions) shard.HTTPOptions {
	o.ETag = r.ETag
	if r.FromKept {
		o.ETagChanged = r.keep.etagChanged
	}
	return o
}

// fusedRegion is bytes [offset, offset+f.Size()) of a shard holding the
// tensors of f as the checkpoint stores them.
type fusedRegion struct {
	offset int64
	f      *hf.Fused
}

// Rearrange turns the fetched bytes of shard s into the layout its
// manifest entry lists: the same bytes, but those of tensors the
// checkpoint stores fused (gpt-oss's experts: interleaved, input-major)
// are rearranged. data is not modified: a caching source may hold it.
// It suits loader.Options.Rearrange.
func (r *Repo) Rearrange(s *manifest.Shard, data []byte) ([]byte, error) {
	regs := r.fused[s.ID]
	if len(regs) == 0 {
		return data, nil
	}
	out := bytes.Clone(data)
	for _, g := range regs {
		end := g.offset + g.f.Size()
		if g.offset < 0 || end > int64(len(data)) {
			return nil, fmt.Errorf("%s: shard %s: fused tensors %v at bytes [%d, %d) of %d", r.Location, s.ID, g.f.Names, g.offset, end, len(data))
		}
		b, err := g.f.Unfuse(data[g.offset:end])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Location, err)
		}
		copy(out[g.offset:end], b)
	}
	return out, nil
}

// normalURL is u as shard.HTTP prints the URLs it fetches.
func normalURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	p.Fragment = ""
	return p.String()
}

// Open indexes the repository and loads it as a lazily fetched pack:
// everything but the routed experts is fetched and converted to o.Quant
// now, each routed expert on first use.
func Open(ctx context.Context, loc Location, o Options) (*loader.Pack, *Repo, error) {
	r, err := Index(ctx, loc, o)
	if err != nil {
		return nil, nil, err
	}
	ho := r.HTTP(o.HTTP)
	src, err := shard.NewHTTP(r.Base, ho)
	if err != nil {
		return nil, nil, err
	}
	m := r.Manifest
	pk, err := loader.LoadWith(ctx, m, &shard.Fetcher{Src: src, HTTP: ho}, loader.Options{Convert: o.Quant.Converter(m.Model), Rearrange: r.Rearrange})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", loc, err)
	}
	if pk.Tokenizer, err = tokenizer.Load("hf", r.Tokenizer, r.TokenizerConfig, m.Model.Vocab); err != nil {
		return nil, nil, fmt.Errorf("%s: tokenizer.json: %w", loc, err)
	}
	return pk, r, nil
}

// build reads the repository's config, tokenizer and safetensors headers
// through g and builds its manifest without reading any weight (but the
// few a config cannot describe unless they are zero, which it checks).
// g's base is the location's revision; its answers may be replayed (a
// kept index), and then go through the same checks.
func build(ctx context.Context, loc Location, endpoint string, g *getter, q Quant) (*Repo, error) {
	fail := func(file string, err error) error {
		return fmt.Errorf("%s: %s: %w", loc, file, err)
	}
	// config.json first: it says which commit the revision is at, and every
	// later read names that commit, so a revision that moves meanwhile
	// cannot mix two versions.
	cfg, err := g.get(ctx, "config.json", 0, -1, maxConfigBytes)
	if err != nil {
		return nil, configError(loc, err)
	}
	r := &Repo{Location: loc, Commit: loc.Revision, Pinned: validCommit(loc.Revision), etags: map[string]string{}}
	if c := cfg.commit; c != "" {
		if !validCommit(c) {
			return nil, fail("config.json", fmt.Errorf("X-Repo-Commit %q is not a commit hash", c))
		}
		r.Commit, r.Pinned = c, true
	}
	r.Base = resolveBase(endpoint, loc.Repo, r.Commit)
	g.base = r.Base
	optional := func(file string, limit int64) ([]byte, error) {
		a, err := g.get(ctx, file, 0, -1, limit)
		if errors.Is(err, errNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fail(file, err)
		}
		return a.body, nil
	}
	gen, err := optional("generation_config.json", maxConfigBytes)
	if err != nil {
		return nil, err
	}
	tok, err := g.get(ctx, "tokenizer.json", 0, -1, maxFileBytes)
	if err != nil {
		return nil, fail("tokenizer.json", err)
	}
	r.Tokenizer = tok.body
	if r.TokenizerConfig, err = optional("tokenizer_config.json", maxFileBytes); err != nil {
		return nil, err
	}
	if r.ChatTemplate, err = optional("chat_template.jinja", maxConfigBytes); err != nil {
		return nil, err
	}
	if r.ChatTemplate != nil && !utf8.Valid(r.ChatTemplate) {
		return nil, fail("chat_template.jinja", errors.New("not UTF-8"))
	}
	files, err := weightFiles(ctx, g, fail)
	if err != nil {
		return nil, err
	}
	var infos []safetensors.Info
	for _, f := range files {
		in, etag, err := readHeader(ctx, g, f)
		if err != nil {
			if strings.Contains(err.Error(), f+":") { // the safetensors parser names it
				return nil, fmt.Errorf("%s: %w", loc, err)
			}
			return nil, fail(f, err)
		}
		if etag != "" {
			r.etags[normalURL(r.Base+url.PathEscape(f))] = etag
		}
		infos = append(infos, in...)
	}
	res, err := hf.Resolve(cfg.body, infos)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "config.json") || slices.ContainsFunc(files, func(f string) bool { return strings.Contains(msg, f) }) {
			return nil, fmt.Errorf("%s: %w", loc, err)
		}
		return nil, fail(strings.Join(files, ", "), err)
	}
	c := res.Config
	if err := addGenerationEOS(&c, gen); err != nil {
		return nil, fail("generation_config.json", err)
	}
	for _, in := range res.ZeroOnly {
		if in.Size() == 0 {
			continue
		}
		if in.Size() > maxZeroBytes {
			return nil, fail(in.File, fmt.Errorf("tensor %s, which must be all zeros to be left out, is %d bytes; refusing to download more than %d to check it", in.Name, in.Size(), maxZeroBytes))
		}
		a, err := g.get(ctx, in.File, in.FileOffset, in.Size(), 0)
		if err != nil {
			return nil, fail(in.File, err)
		}
		dt, err := in.TensorDType()
		if err != nil {
			return nil, fail(in.File, fmt.Errorf("tensor %s: %w", in.Name, err))
		}
		if err := hf.CheckZero(in, &tensor.Tensor{Name: in.Name, DType: dt, Shape: in.Shape, Data: a.body}); err != nil {
			return nil, fail(in.File, err)
		}
	}
	m := &manifest.Manifest{Format: manifest.Format, Version: manifest.Version, Model: c, Quant: q.String()}
	if err := r.tokenizer(m); err != nil {
		return nil, err
	}
	// Where each canonical tensor stored fused is: its group and place.
	fusedAt := map[string]int{}
	for i, f := range res.Fused {
		for _, n := range f.Names {
			fusedAt[n] = i
		}
	}
	r.fused = map[string][]fusedRegion{}
	for _, grp := range manifest.Groups(c.Spec()) {
		s := manifest.Shard{ID: manifest.GroupID(grp[0]), Kind: manifest.GroupKind(grp[0]), Layer: grp[0].Layer, Expert: grp[0].Expert, Unverified: true}
		// In file order, so that tensors stored one after another (an
		// expert's gate, up and down usually are) are one Range request;
		// a fused group's tensors are together, where its first source is.
		where := func(sp model.TensorSpec) (string, int64) {
			if i, ok := fusedAt[sp.Name]; ok {
				in := res.Fused[i].Sources[0]
				return in.File, in.FileOffset
			}
			in := res.Tensors[sp.Name]
			return in.File, in.FileOffset
		}
		grp = slices.Clone(grp)
		slices.SortStableFunc(grp, func(a, b model.TensorSpec) int {
			fa, oa := where(a)
			fb, ob := where(b)
			return cmp.Or(strings.Compare(fa, fb), cmp.Compare(oa, ob))
		})
		specs := map[string]model.TensorSpec{}
		for _, sp := range grp {
			specs[sp.Name] = sp
		}
		done := map[int]bool{}
		for _, sp := range grp {
			if i, ok := fusedAt[sp.Name]; ok {
				if done[i] {
					continue
				}
				done[i] = true
				f := &res.Fused[i]
				reg := fusedRegion{offset: s.Size, f: f}
				off := s.Size
				for _, n := range f.Names {
					sp, ok := specs[n]
					if !ok {
						return nil, fail(f.Sources[0].File, fmt.Errorf("tensor %s, stored fused with %v, belongs to another shard than %s", n, f.Names, s.ID))
					}
					shape := sp.Shape
					size, err := tensor.MatrixBytes(f.DType, tensor.MatrixRows(shape), shape[len(shape)-1])
					if err != nil {
						return nil, fail(f.Sources[0].File, fmt.Errorf("tensor %s: %w", n, err))
					}
					s.Tensors = append(s.Tensors, manifest.Tensor{Name: n, DType: f.DType.String(), Shape: shape, Offset: off, Length: int64(size)})
					off += int64(size)
				}
				for _, in := range f.Sources {
					s.Pieces = append(s.Pieces, manifest.Piece{File: r.Base + url.PathEscape(in.File), Offset: in.FileOffset, Length: in.Size()})
					s.Size += in.Size()
				}
				if off != s.Size {
					return nil, fail(f.Sources[0].File, fmt.Errorf("tensors %v are %d bytes, stored fused in %d", f.Names, off-reg.offset, s.Size-reg.offset))
				}
				r.fused[s.ID] = append(r.fused[s.ID], reg)
				continue
			}
			in := res.Tensors[sp.Name]
			dt, err := in.TensorDType()
			if err != nil {
				return nil, fail(in.File, fmt.Errorf("tensor %s: %w", in.Name, err))
			}
			if dt != tensor.F32 && dt != tensor.F16 && dt != tensor.BF16 {
				return nil, fail(in.File, fmt.Errorf("tensor %s is %s; mode loads f32, f16 and bf16 checkpoints", in.Name, in.DType))
			}
			s.Tensors = append(s.Tensors, manifest.Tensor{Name: sp.Name, DType: dt.String(), Shape: sp.Shape, Offset: s.Size, Length: in.Size()})
			s.Pieces = append(s.Pieces, manifest.Piece{File: r.Base + url.PathEscape(in.File), Offset: in.FileOffset, Length: in.Size()})
			s.Size += in.Size()
		}
		m.Shards = append(m.Shards, s)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	r.Manifest = m
	r.endpoint = endpoint
	return r, nil
}

// configError is the error for config.json, the first file read.
func configError(loc Location, err error) error {
	if errors.Is(err, errNotFound) {
		err = fmt.Errorf("%w: check the repository id, revision and endpoint", err)
	}
	return fmt.Errorf("%s: config.json: %w", loc, err)
}

// weightFiles lists the safetensors files: the index's, or
// model.safetensors. A repository with neither is refused, saying so when
// it holds PyTorch weights instead.
func weightFiles(ctx context.Context, g *getter, fail func(string, error) error) ([]string, error) {
	a, err := g.get(ctx, safetensors.IndexFile, 0, -1, safetensors.MaxIndexBytes)
	if err == nil {
		weightMap, err := safetensors.ParseIndex(safetensors.IndexFile, a.body)
		if err != nil {
			return nil, fail(safetensors.IndexFile, err)
		}
		var files []string
		for _, f := range weightMap {
			if !validFileName(f) {
				return nil, fail(safetensors.IndexFile, fmt.Errorf("weight_map names file %q, not a .safetensors file beside it", f))
			}
			files = append(files, f)
		}
		slices.Sort(files)
		files = slices.Compact(files)
		if len(files) == 0 {
			return nil, fail(safetensors.IndexFile, errors.New("weight_map is empty"))
		}
		return files, nil
	}
	if !errors.Is(err, errNotFound) {
		return nil, fail(safetensors.IndexFile, err)
	}
	if _, err := g.get(ctx, safetensors.SingleFile, 0, 8, 0); err == nil {
		return []string{safetensors.SingleFile}, nil
	} else if !errors.Is(err, errNotFound) {
		return nil, fail(safetensors.SingleFile, err)
	}
	for _, bin := range []string{"pytorch_model.bin.index.json", "pytorch_model.bin"} {
		if _, err := g.get(ctx, bin, 0, 1, 0); err == nil {
			return nil, fail(bin, errors.New("the repository has PyTorch weights but no safetensors files (neither model.safetensors nor model.safetensors.index.json); mode reads safetensors only"))
		}
	}
	return nil, fail(safetensors.SingleFile, errors.New("not found, nor model.safetensors.index.json: the repository has no safetensors weights"))
}

func validFileName(f string) bool {
	return strings.HasSuffix(f, ".safetensors") && !strings.ContainsAny(f, "/\\\x00") && f != ".." && validRevision(f)
}

func validCommit(c string) bool {
	if len(c) != 40 && len(c) != 64 {
		return false
	}
	_, err := hex.DecodeString(c)
	return err == nil
}

// readHeader reads a safetensors file's header with two Range requests
// (its 8-byte length, then the JSON) and checks every tensor's offsets
// against the file's size the server reported. It returns the ETag the
// answers carried.
func readHeader(ctx context.Context, g *getter, file string) ([]safetensors.Info, string, error) {
	a, err := g.get(ctx, file, 0, 8, 0)
	if err != nil {
		return nil, "", err
	}
	size := a.total
	if size < 0 {
		return nil, "", errors.New("the server did not say the file's size (Content-Range total \"*\")")
	}
	if size < 8+2 {
		return nil, "", fmt.Errorf("the file is %d bytes, too short for a safetensors header", size)
	}
	if a.linkedSize >= 0 && a.linkedSize != size {
		return nil, "", fmt.Errorf("X-Linked-Size says %d bytes, Content-Range says %d", a.linkedSize, size)
	}
	n := binary.LittleEndian.Uint64(a.body)
	if n < 2 || n > safetensors.MaxHeaderBytes || n > uint64(size-8) {
		return nil, "", fmt.Errorf("header length %d does not fit the %d-byte file (at most %d)", n, size, safetensors.MaxHeaderBytes)
	}
	h, err := g.get(ctx, file, 8, int64(n), 0)
	if err != nil {
		return nil, "", err
	}
	if h.etag != a.etag || h.total != size {
		return nil, "", fmt.Errorf("the file changed between the two reads of its header (ETag %s, %d bytes; then ETag %s, %d bytes)", a.etag, size, h.etag, h.total)
	}
	st, err := safetensors.NewReader(prefix(append(a.body, h.body...)), size, file)
	if err != nil {
		return nil, "", err
	}
	var out []safetensors.Info
	for _, name := range st.Names() {
		in, _ := st.Info(name)
		out = append(out, in)
	}
	return out, a.etag, nil
}

// prefix is the first bytes of a file as an io.ReaderAt: reading past them
// is an error, so parsing a header never reaches for a weight.
type prefix []byte

func (p prefix) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > int64(len(p)) {
		return 0, fmt.Errorf("read of bytes [%d, %d) past the %d header bytes fetched", off, off+int64(len(b)), len(p))
	}
	return copy(b, p[off:]), nil
}

// tokenizer fills the manifest's tokenizer from the files already read.
func (r *Repo) tokenizer(m *manifest.Manifest) error {
	h := sha256.Sum256(r.Tokenizer)
	m.Tokenizer = manifest.Tokenizer{Kind: "hf", File: r.Base + "tokenizer.json", SHA256: hex.EncodeToString(h[:]), Size: int64(len(r.Tokenizer))}
	if r.TokenizerConfig != nil {
		h := sha256.Sum256(r.TokenizerConfig)
		m.Tokenizer.Config, m.Tokenizer.ConfigSHA256, m.Tokenizer.ConfigSize = r.Base+"tokenizer_config.json", hex.EncodeToString(h[:]), int64(len(r.TokenizerConfig))
		var c struct {
			ChatTemplate json.RawMessage `json:"chat_template"`
		}
		if json.Unmarshal(r.TokenizerConfig, &c) == nil {
			json.Unmarshal(c.ChatTemplate, &m.ChatTemplate) // a string template; named templates are left out
		}
	}
	if r.ChatTemplate != nil {
		m.ChatTemplate = string(r.ChatTemplate)
	}
	tok, err := tokenizer.LoadHF(r.Tokenizer, r.TokenizerConfig)
	if err != nil {
		return fmt.Errorf("%s: tokenizer.json: %w", r.Location, err)
	}
	m.Tokenizer.AddBOS = tok.AddsBOS() && m.Model.BOS >= 0
	return nil
}

// addGenerationEOS adds generation_config.json's eos_token_id (a number or
// a list) to the config's end tokens: transformers stops on those.
func addGenerationEOS(c *model.Config, raw []byte) error {
	if raw == nil {
		return nil
	}
	var g struct {
		EOS json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		return err
	}
	if len(g.EOS) == 0 || bytes.Equal(g.EOS, []byte("null")) {
		return nil
	}
	var ids []int
	if err := json.Unmarshal(g.EOS, &ids); err != nil {
		var one int
		if err := json.Unmarshal(g.EOS, &one); err != nil {
			return fmt.Errorf("eos_token_id %s is neither a token id nor a list of them", g.EOS)
		}
		ids = []int{one}
	}
	for _, id := range ids {
		if id < 0 || id >= c.Vocab {
			return fmt.Errorf("eos_token_id %d outside the vocabulary of %d", id, c.Vocab)
		}
		if !slices.Contains(c.EOS, id) && len(c.EOS) < 64 {
			c.EOS = append(c.EOS, id)
		}
	}
	return nil
}
