package pack

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// DefaultMaxShard keeps every shard bindable within WebGPU's default
// 128 MiB storage-buffer binding limit with room to spare.
const DefaultMaxShard = 64 << 20

// Options configures Write.
type Options struct {
	// Quant is the format of the weight matrices: F32, F16, Q8_0, Q4_0 or
	// Q4_K. Vectors, routers and the shared-expert gate stay F32; a matrix
	// whose width the format cannot block falls back to the next format
	// that can (q4_k → q4_0 → q8_0 → f16).
	//
	// Invalid (the zero value) keeps each matrix in the format the Source
	// reports through Formatter, which it must implement; the manifest's
	// quant is then "source".
	Quant tensor.DType
	// DenseQuant is the format of the matrices every token uses in a model
	// with routed experts: attention, shared experts, dense FFN layers and
	// the embedding table. Routed experts, the bulk of such a model and the
	// part a client fetches on demand, use Quant. Invalid (the zero value)
	// means q8_0 when Quant is a 4-bit format and the model has routed
	// experts, else Quant (RATIONALE.md, "Quantisation": 4-bit experts cost
	// little agreement, 4-bit dense matrices most of it). A model without
	// routed experts uses Quant throughout and rejects a valid DenseQuant.
	DenseQuant tensor.DType
	// EmbedQuant, when valid, is the format of an untied embedding table
	// instead of the dense format (llama.cpp's --token-embedding-type).
	EmbedQuant tensor.DType
	// MaxShard caps a shard's size; 0 means DefaultMaxShard.
	MaxShard int64
	// ReadSlice bounds the source bytes read at once (0 means 32 MiB), so a
	// multi-GB embedding table does not have to fit in memory whole.
	ReadSlice int64
	// Force replaces an existing pack at the destination.
	Force bool
	// Progress, when set, is called after each tensor with the bytes
	// written so far and the total expected.
	Progress func(done, total int64)
	// Quantizer, when set, replaces tensor.Quantize for matrices stored in
	// a block format (q8_0, q4_0, q4_k): gptq.Stats.Quantizer compensates
	// rounding errors using calibration statistics. It receives row slices
	// in a plain format named by their tensor's canonical name and must
	// return them in format to with the same shape.
	Quantizer func(t *tensor.Tensor, to tensor.DType) (*tensor.Tensor, error)
	// Logf, when set, is told what Write did besides writing: the stale
	// temporary directories of killed imports it removed.
	Logf func(format string, args ...any)
}

// CheckFormat reports whether packs store matrices in format d.
func CheckFormat(d tensor.DType) error {
	switch d {
	case tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K:
		return nil
	}
	return fmt.Errorf("%v is not a pack format (f32, f16, q8_0, q4_0, q4_k)", d)
}

// Write packs src into dir. It writes into a temporary directory beside
// dir and renames it into place at the end, so a failed or interrupted
// import never leaves a pack that looks complete.
func Write(dir string, src Source, tok Tokenizer, chatTemplate string, o Options) (*manifest.Manifest, error) {
	cfg := src.Config()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.MaxShard <= 0 {
		o.MaxShard = DefaultMaxShard
	}
	if o.ReadSlice <= 0 {
		o.ReadSlice = defaultReadSlice
	}
	if o.MaxShard < manifest.Align*4 {
		return nil, fmt.Errorf("max shard size %d is too small", o.MaxShard)
	}
	keep, _ := src.(Formatter)
	quant := o.Quant.String()
	if o.Quant == tensor.Invalid {
		if keep == nil {
			return nil, fmt.Errorf("no quantisation given and the source cannot keep its own formats (it has no Format method)")
		}
		quant = "source"
	}
	for _, q := range []struct {
		what string
		d    tensor.DType
	}{{"quantisation", o.Quant}, {"dense quantisation", o.DenseQuant}, {"embedding quantisation", o.EmbedQuant}} {
		if q.d == tensor.Invalid {
			continue
		}
		if err := CheckFormat(q.d); err != nil {
			return nil, fmt.Errorf("%s: %w", q.what, err)
		}
		if o.Quant == tensor.Invalid {
			return nil, fmt.Errorf("a %s needs a pack quantisation: a source's own formats are kept whole", q.what)
		}
	}
	if o.DenseQuant != tensor.Invalid && !cfg.HasRoutedExperts() {
		return nil, fmt.Errorf("a dense quantisation needs a model with routed experts: every matrix of this %s model is dense and uses the pack quantisation", cfg.Arch)
	}
	if err := checkDest(dir, o.Force); err != nil {
		return nil, err
	}
	for _, stale := range removeStalePartials(dir, time.Now()) {
		if o.Logf != nil {
			o.Logf("removed %s, left by an import that did not finish", stale)
		}
	}
	tmp, err := tempDir(dir)
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	w := &writer{dir: tmp, o: o, tied: cfg.TiedOutput, dense: denseQuant(o, cfg)}
	if f, ok := src.(Fixed); ok && anyFixed(f, cfg) {
		w.fixed = f
	}
	if o.Quant == tensor.Invalid {
		w.keep = keep
	}
	if w.keep == nil && w.fixed == nil && !hasExpertBias(cfg) {
		// Widening FFNs with zero neurons keeps the function only for
		// SwiGLU without biases, and cannot widen a fixed format.
		if p := padFFNs(src, cfg, o.Quant, w.dense); p != nil {
			src, cfg = p, p.cfg
		}
	}
	m := &manifest.Manifest{Format: manifest.Format, Version: manifest.Version, Model: cfg, Quant: quant, ChatTemplate: chatTemplate}
	if w.keep == nil && w.dense != o.Quant {
		m.DenseQuant = w.dense.String()
	}
	if m.Tokenizer, err = w.tokenizer(tok); err != nil {
		return nil, err
	}
	specs := cfg.Spec()
	var total int64
	for _, sp := range specs {
		n, err := tensor.MatrixBytes(w.dtypeFor(sp), tensor.MatrixRows(sp.Shape), sp.Shape[len(sp.Shape)-1])
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", sp.Name, err)
		}
		total += int64(n)
	}
	var written int64
	for _, gs := range manifest.Groups(specs) {
		g := w.newGroup(gs[0])
		for _, sp := range gs {
			n, err := g.add(src, sp)
			if err != nil {
				return nil, err
			}
			written += n
			if o.Progress != nil {
				o.Progress(written, total)
			}
		}
		if err := g.flush(); err != nil {
			return nil, err
		}
		m.Shards = append(m.Shards, g.shards...)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("internal error: the written manifest does not validate: %w", err)
	}
	b, err := manifest.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "manifest.json"), b, 0o644); err != nil {
		return nil, err
	}
	if err := replace(tmp, dir); err != nil {
		return nil, err
	}
	done = true
	return m, nil
}

// checkDest refuses to overwrite anything but an existing pack, and that
// only with Force: nothing a user saved is lost.
func checkDest(dir string, force bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if len(entries) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
		return fmt.Errorf("%s exists and is not a pack: choose an empty or new directory", dir)
	}
	if !force {
		return fmt.Errorf("%s already holds a pack: use --force to replace it", dir)
	}
	return nil
}

// partialName matches the temporary directories tempDir and replace make
// for a destination named NAME: ".NAME.partial-" then 12 hex digits, with
// ".old" for a pack moved aside. Nothing else is ever removed.
func partialName(name string) *regexp.Regexp {
	return regexp.MustCompile(`^\.` + regexp.QuoteMeta(name) + `\.partial-[0-9a-f]{12}(\.old)?$`)
}

// staleAfter is how long a temporary directory must have been left alone
// before another import removes it: an import running beside this one
// adds a shard file every few seconds, so its directory stays younger.
const staleAfter = 10 * time.Minute

// removeStalePartials removes the temporary directories that killed
// imports into dir left beside it, and returns their paths. Errors are
// ignored: a directory that cannot be removed is only clutter, as before.
func removeStalePartials(dir string, now time.Time) []string {
	parent, name := filepath.Split(filepath.Clean(dir))
	if parent == "" {
		parent = "."
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	re := partialName(name)
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || !re.MatchString(e.Name()) {
			continue // a symlink or a file of that name is not ours
		}
		p := filepath.Join(parent, e.Name())
		if lastChange(p).After(now.Add(-staleAfter)) {
			continue
		}
		if os.RemoveAll(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed
}

// lastChange is the latest modification time of a temporary pack
// directory and of its shards directory, where a running import adds
// files.
func lastChange(p string) time.Time {
	var t time.Time
	for _, q := range []string{p, filepath.Join(p, "shards")} {
		if fi, err := os.Lstat(q); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

func tempDir(dir string) (string, error) {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	var r [6]byte
	rand.Read(r[:])
	tmp := filepath.Join(parent, "."+filepath.Base(dir)+".partial-"+hex.EncodeToString(r[:]))
	if err := os.MkdirAll(filepath.Join(tmp, "shards"), 0o755); err != nil {
		return "", err
	}
	return tmp, nil
}

// replace moves the finished pack into place; an old pack is moved aside
// first and removed only after the new one is there.
func replace(tmp, dir string) error {
	old := ""
	if entries, err := os.ReadDir(dir); err == nil {
		if len(entries) == 0 {
			os.Remove(dir)
		} else {
			old = tmp + ".old"
			if err := os.Rename(dir, old); err != nil {
				return err
			}
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

type writer struct {
	dir   string
	o     Options
	tied  bool
	dense tensor.DType // format of the matrices that are not routed experts'
	keep  Formatter    // set when keeping the source's formats
	fixed Fixed        // set when the source has tensors of a fixed format
}

// anyFixed reports whether f fixes the format of any tensor of cfg.
func anyFixed(f Fixed, cfg model.Config) bool {
	for _, sp := range cfg.Spec() {
		if _, ok := f.FixedFormat(sp.Name); ok {
			return true
		}
	}
	return false
}

// hasExpertBias reports whether any layer's experts have biases or a
// non-SwiGLU activation, which zero neurons would not leave unchanged.
func hasExpertBias(c model.Config) bool {
	return slices.ContainsFunc(c.FFN, func(f model.FFN) bool { return f.ExpertBias || f.Act != model.ActSwiGLU })
}

// denseQuant resolves Options.DenseQuant for cfg.
func denseQuant(o Options, cfg model.Config) tensor.DType {
	switch {
	case !cfg.HasRoutedExperts():
		return o.Quant
	case o.DenseQuant != tensor.Invalid:
		return o.DenseQuant
	case o.Quant == tensor.Q4_0 || o.Quant == tensor.Q4_K:
		return tensor.Q8_0
	}
	return o.Quant
}

// dtypeFor is the storage format of one tensor.
func (w *writer) dtypeFor(sp model.TensorSpec) tensor.DType {
	if len(sp.Shape) < 2 || sp.Shape[0] == 1 || strings.HasSuffix(sp.Name, "_bias") {
		return tensor.F32 // norms, biases (gpt-oss's expert biases are [experts, width]), the shared-expert gate
	}
	if w.fixed != nil {
		if d, ok := w.fixed.FixedFormat(sp.Name); ok {
			return d
		}
	}
	if strings.HasSuffix(sp.Name, ".router") {
		return tensor.F32 // routing decisions are sensitive and routers small
	}
	cols := sp.Shape[1]
	q := w.o.Quant
	if sp.Expert < 0 {
		q = w.dense
	}
	if w.keep != nil {
		// Kept as the source has it, the output head included: the
		// fallbacks below only catch a format the width cannot hold.
		q = w.keep.Format(sp.Name)
	} else if (q == tensor.Q4_0 || q == tensor.Q4_K) && w.head(sp.Name) {
		q = tensor.Q8_0 // the output head is the most sensitive matrix; llama.cpp keeps it at 6+ bits too
	} else if sp.Name == model.NameEmbed && w.o.EmbedQuant != tensor.Invalid && !w.tied {
		q = w.o.EmbedQuant
	}
	return storedFormat(q, cols)
}

// head reports whether name is the output head (the embedding table when
// the head is tied to it).
func (w *writer) head(name string) bool {
	return name == model.NameOutput || (w.tied && name == model.NameEmbed)
}

// storedFormat is the format a matrix of cols columns is stored in when q
// is asked for: q, or the first of its fallbacks whose blocks the width
// holds.
func storedFormat(q tensor.DType, cols int) tensor.DType {
	var fallbacks []tensor.DType
	switch q {
	case tensor.Q4_K:
		fallbacks = []tensor.DType{tensor.Q4_K, tensor.Q4_0, tensor.Q8_0, tensor.F16}
	case tensor.Q4_0:
		fallbacks = []tensor.DType{tensor.Q4_0, tensor.Q8_0, tensor.F16}
	case tensor.Q8_0:
		fallbacks = []tensor.DType{tensor.Q8_0, tensor.F16}
	default:
		fallbacks = []tensor.DType{q}
	}
	for _, d := range fallbacks {
		if tensor.CanQuantize(d, cols) {
			return d
		}
	}
	return tensor.F32
}

func (w *writer) writeFile(data []byte, ext string) (name, sum string, err error) {
	h := sha256.Sum256(data)
	sum = hex.EncodeToString(h[:])
	name = "shards/" + sum + ext
	if err := os.WriteFile(filepath.Join(w.dir, name), data, 0o644); err != nil {
		return "", "", err
	}
	return name, sum, nil
}

func (w *writer) tokenizer(t Tokenizer) (manifest.Tokenizer, error) {
	var mt manifest.Tokenizer
	mt.Kind, mt.AddBOS = t.Kind, t.AddBOS
	ext := ".json"
	if t.Kind == "llama2c" {
		ext = ".bin"
	}
	if len(t.File) == 0 {
		return mt, errors.New("pack: no tokenizer")
	}
	var err error
	if mt.File, mt.SHA256, err = w.writeFile(t.File, ext); err != nil {
		return mt, err
	}
	mt.Size = int64(len(t.File))
	if t.Config != nil {
		if mt.Config, mt.ConfigSHA256, err = w.writeFile(t.Config, ".json"); err != nil {
			return mt, err
		}
		mt.ConfigSize = int64(len(t.Config))
	}
	return mt, nil
}

// group accumulates the tensors of one (layer, expert) group into shards of
// at most MaxShard bytes.
type group struct {
	w      *writer
	spec   model.TensorSpec
	buf    []byte
	cur    []manifest.Tensor
	shards []manifest.Shard
}

func (w *writer) newGroup(sp model.TensorSpec) *group { return &group{w: w, spec: sp} }

func (g *group) id() string {
	id := manifest.GroupID(g.spec)
	if n := len(g.shards); n > 0 {
		id += fmt.Sprintf(".%d", n)
	}
	return id
}

// add reads, converts and appends one tensor, in row chunks when it would
// not fit a shard whole. It returns the bytes it added.
func (g *group) add(src Source, sp model.TensorSpec) (int64, error) {
	d := g.w.dtypeFor(sp)
	rows, cols := tensor.MatrixRows(sp.Shape), sp.Shape[len(sp.Shape)-1]
	full, err := tensor.MatrixBytes(d, rows, cols)
	if err != nil {
		return 0, fmt.Errorf("tensor %s: %w", sp.Name, err)
	}
	chunk := rows
	if int64(full) > g.w.o.MaxShard {
		one, _ := tensor.MatrixBytes(d, 1, cols)
		chunk = int(g.w.o.MaxShard / int64(one+8)) // +8: slack for per-chunk padding of scale arrays
		if chunk < 1 {
			return 0, fmt.Errorf("tensor %s: one row (%d bytes) is larger than the shard cap", sp.Name, one)
		}
	}
	var added int64
	for r0 := 0; r0 < rows; r0 += chunk {
		n := min(chunk, rows-r0)
		q, rms, err := readConverted(src, sp, r0, n, d, g.w.o.ReadSlice, g.w.o.Quantizer)
		if err != nil {
			return added, err
		}
		mt := manifest.Tensor{Name: sp.Name, DType: d.String(), Shape: sp.Shape, Length: int64(len(q.Data)), QuantRMS: rms}
		if n != rows {
			mt.Row0, mt.Rows = r0, n
		}
		if err := g.append(mt, q.Data); err != nil {
			return added, err
		}
		added += int64(len(q.Data))
	}
	return added, nil
}

// defaultReadSlice is Options.ReadSlice's default.
const defaultReadSlice = 32 << 20

// readConverted reads rows [r0, r0+n) of a tensor in slices of at most
// slice source bytes, converts each to format d, and joins them; it also
// returns the RMS error the conversion introduced over all the rows.
func readConverted(src Source, sp model.TensorSpec, r0, n int, d tensor.DType, slice int64, quantizer func(*tensor.Tensor, tensor.DType) (*tensor.Tensor, error)) (*tensor.Tensor, float64, error) {
	rows, cols := tensor.MatrixRows(sp.Shape), sp.Shape[len(sp.Shape)-1]
	step := max(1, int(slice/int64(4*cols))) // 4: the widest source element, f32
	var parts []*tensor.Tensor
	var sq float64
	var elems int
	for s := r0; s < r0+n; s += step {
		m := min(step, r0+n-s)
		readRows := m
		if m == rows {
			readRows = 0
		}
		t, err := src.Read(sp.Name, s, readRows)
		if err != nil {
			return nil, 0, err
		}
		if len(sp.Shape) == 2 && len(t.Shape) == 1 && sp.Shape[0] == 1 {
			t.Shape = []int{1, t.Shape[0]}
		}
		q, err := convert(t, d, quantizer)
		if err != nil {
			return nil, 0, fmt.Errorf("tensor %s: %w", sp.Name, err)
		}
		if lossy(t.DType, d) {
			orig, err := t.Float32s()
			if err != nil {
				return nil, 0, fmt.Errorf("tensor %s: %w", sp.Name, err)
			}
			deq, err := q.Float32s()
			if err != nil {
				return nil, 0, fmt.Errorf("tensor %s: %w", sp.Name, err)
			}
			for i, v := range orig { // one running sum in element order: the same however rows are sliced
				e := float64(v) - float64(deq[i])
				sq += e * e
			}
		}
		elems += m * cols
		parts = append(parts, q)
	}
	rms := math.Sqrt(sq / float64(max(elems, 1)))
	if len(parts) == 1 {
		return parts[0], rms, nil
	}
	q, err := tensor.ConcatRows(parts)
	if err != nil {
		return nil, 0, fmt.Errorf("tensor %s: %w", sp.Name, err)
	}
	return q, rms, nil
}

func (g *group) append(t manifest.Tensor, data []byte) error {
	off := alignUp(int64(len(g.buf)))
	if len(g.cur) > 0 && off+int64(len(data)) > g.w.o.MaxShard {
		if err := g.flush(); err != nil {
			return err
		}
		off = 0
	}
	g.buf = append(g.buf, make([]byte, off-int64(len(g.buf)))...)
	t.Offset = off
	g.buf = append(g.buf, data...)
	g.cur = append(g.cur, t)
	return nil
}

func (g *group) flush() error {
	if len(g.cur) == 0 {
		return nil
	}
	name, sum, err := g.w.writeFile(g.buf, "")
	if err != nil {
		return err
	}
	g.shards = append(g.shards, manifest.Shard{
		ID: g.id(), Kind: manifest.GroupKind(g.spec), Layer: g.spec.Layer, Expert: g.spec.Expert,
		SHA256: sum, Size: int64(len(g.buf)),
		Pieces:  []manifest.Piece{{File: name, Offset: 0, Length: int64(len(g.buf))}},
		Tensors: g.cur,
	})
	g.buf, g.cur = g.buf[:0], nil
	return nil
}

func alignUp(n int64) int64 { return (n + manifest.Align - 1) / manifest.Align * manifest.Align }

// lossy reports whether storing a from-format tensor as to loses precision.
func lossy(from, to tensor.DType) bool {
	if from == to || to == tensor.F32 {
		return false
	}
	return !(to == tensor.F16 && from == tensor.F16)
}

// convert stores t in format d, through quantizer (when not nil) for the
// block formats.
func convert(t *tensor.Tensor, d tensor.DType, quantizer func(*tensor.Tensor, tensor.DType) (*tensor.Tensor, error)) (*tensor.Tensor, error) {
	if t.DType == d {
		return t, nil
	}
	if tensor.BlockSize(t.DType) > 1 {
		// Quantize reads only the plain formats: go through the block
		// format's exact float32 values.
		f, err := t.Float32s()
		if err != nil {
			return nil, err
		}
		t = tensor.FromF32(t.Name, t.Shape, f)
		if d == tensor.F32 {
			return t, nil
		}
	}
	switch d {
	case tensor.F32:
		f, err := t.Float32s()
		if err != nil {
			return nil, err
		}
		return tensor.FromF32(t.Name, t.Shape, f), nil
	}
	if quantizer != nil && tensor.BlockSize(d) > 1 {
		q, err := quantizer(t, d)
		if err != nil {
			return nil, err
		}
		if q.DType != d || !slices.Equal(q.Shape, t.Shape) {
			return nil, fmt.Errorf("quantizer returned %v %v for %v %v", q.DType, q.Shape, d, t.Shape)
		}
		return q, nil
	}
	return tensor.Quantize(t, d)
}
