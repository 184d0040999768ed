package manifest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"

	"github.com/moderuntime/mode/internal/jsondepth"
)

// MaxSize is the largest manifest Parse accepts.
const MaxSize = 64 << 20

// Parse decodes and validates a manifest. Unknown fields are errors, so a
// typo in a hand-edited manifest is reported instead of ignored.
func Parse(b []byte) (*Manifest, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("manifest is %d bytes, more than the %d accepted", len(b), MaxSize)
	}
	if err := jsondepth.Check(b, jsondepth.Max); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := checkCounts(b); err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var m Manifest
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if d.More() {
		return nil, errors.New("manifest: trailing data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Marshal encodes m deterministically (fixed field order, two-space indent,
// trailing newline).
func Marshal(m *Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Bounds a manifest must keep within. They are far above any real pack and
// keep a hostile manifest from making a reader allocate, or promise to
// allocate, without limit (docs/pack-format.md, "Bounds").
const (
	// MaxShardSize bounds a shard's size and a piece's length. A pack's
	// shards are at most 64 MiB by default; an index manifest's core shard
	// holds a whole embedding table, a few GiB for the largest models.
	MaxShardSize = 8 << 30
	// MaxFileSize bounds the tokenizer file and its config.
	MaxFileSize = 256 << 20
)

// Validate checks the schema: the config is runnable, shard ids are unique,
// hashes are hex sha256, pieces add up to the shard size, every tensor lies
// inside its shard with the size its dtype and shape need, and the tensors
// cover exactly what the config requires, each row once.
//
// The cheap checks come first: every count and size is checked against
// its bound, and the number of tensors the config needs against the number
// the shards list, before the config's tensor list is built, so a manifest
// declaring millions of experts is refused at once.
func (m *Manifest) Validate() error {
	if m.Format != Format {
		return fmt.Errorf("manifest: format %q, want %q", m.Format, Format)
	}
	if m.Version != Version {
		return fmt.Errorf("manifest: version %d is not supported (this build reads %d)", m.Version, Version)
	}
	if err := m.Model.Validate(); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	switch m.Tokenizer.Kind {
	case "hf", "llama2c":
	default:
		return fmt.Errorf("manifest: tokenizer kind %q is neither hf nor llama2c", m.Tokenizer.Kind)
	}
	if err := checkFile("tokenizer", m.Tokenizer.File, m.Tokenizer.SHA256, m.Tokenizer.Size); err != nil {
		return err
	}
	if m.Tokenizer.Config != "" {
		if err := checkFile("tokenizer config", m.Tokenizer.Config, m.Tokenizer.ConfigSHA256, m.Tokenizer.ConfigSize); err != nil {
			return err
		}
	}
	ids := make(map[string]bool, len(m.Shards))
	entries := 0
	for i := range m.Shards {
		s := &m.Shards[i]
		if ids[s.ID] {
			return fmt.Errorf("manifest: shard id %q appears twice", s.ID)
		}
		ids[s.ID] = true
		if err := s.validate(&m.Model); err != nil {
			return fmt.Errorf("manifest: shard %s: %w", s.ID, err)
		}
		entries += len(s.Tensors)
	}
	// Every tensor the config needs has at least one entry in a shard.
	if need := m.Model.SpecLen(); need > entries {
		return fmt.Errorf("manifest: the config needs %d tensors, the shards list only %d", need, entries)
	}
	specs := m.Model.Spec()
	index := make(map[string]int, len(specs))
	for i, sp := range specs {
		index[sp.Name] = i
	}
	covered := make([]int, len(specs)) // rows seen per tensor
	for i := range m.Shards {
		s := &m.Shards[i]
		for _, t := range s.Tensors {
			j, ok := index[t.Name]
			if !ok {
				return fmt.Errorf("manifest: shard %s: tensor %s is not part of this model", s.ID, t.Name)
			}
			sp := &specs[j]
			if !sameShape(t.Shape, sp.Shape) {
				return fmt.Errorf("manifest: tensor %s: shape %v, the config needs %v", t.Name, t.Shape, sp.Shape)
			}
			if sp.Layer != s.Layer || sp.Expert != s.Expert {
				return fmt.Errorf("manifest: tensor %s is in shard %s, which is for layer %d expert %d", t.Name, s.ID, s.Layer, s.Expert)
			}
			covered[j] += t.rowCount()
		}
	}
	for i, sp := range specs {
		rows := 1
		if len(sp.Shape) > 1 {
			rows = sp.Shape[0]
		}
		if covered[i] != rows {
			if covered[i] == 0 {
				return fmt.Errorf("manifest: tensor %s is in no shard", sp.Name)
			}
			return fmt.Errorf("manifest: tensor %s: shards hold %d rows, it has %d", sp.Name, covered[i], rows)
		}
	}
	return nil
}

func checkFile(what, file, sum string, size int64) error {
	if err := CheckFileName(file); err != nil {
		return fmt.Errorf("manifest: %s: %w", what, err)
	}
	if err := checkSHA(sum); err != nil {
		return fmt.Errorf("manifest: %s: %w", what, err)
	}
	if size < 0 || size > MaxFileSize {
		return fmt.Errorf("manifest: %s size %d outside [0, %d]", what, size, MaxFileSize)
	}
	return nil
}

// CheckFileName reports whether a file name in a manifest is an absolute
// http(s) URL or a relative, slash-separated path that stays inside the
// pack: not empty, not absolute, no ".." element, no backslash (a path
// separator on Windows) and no NUL. Names such as "a..b" are fine.
func CheckFileName(name string) error {
	if isURL(name) {
		return nil
	}
	bad := name == "" || strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") || strings.Contains(name, ":")
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("file %q must be a relative path inside the pack, or an http(s) URL", name)
	}
	return nil
}

// isURL reports whether a name is an absolute http(s) URL.
func isURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && (strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https"))
}

func checkSHA(s string) error {
	if len(s) != 64 || strings.ToLower(s) != s {
		return fmt.Errorf("sha256 %q is not 64 lowercase hex digits", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("sha256 %q: %w", s, err)
	}
	return nil
}

func (s *Shard) validate(c *model.Config) error {
	if err := checkSHA(s.SHA256); err != nil && !(s.Unverified && s.SHA256 == "") {
		return err
	}
	switch s.Kind {
	case KindCore:
		if s.Layer != -1 || s.Expert != -1 {
			return fmt.Errorf("core shard with layer %d expert %d", s.Layer, s.Expert)
		}
	case KindLayer, KindExpert:
		if s.Layer < 0 || s.Layer >= c.Layers {
			return fmt.Errorf("layer %d out of range", s.Layer)
		}
		if s.Kind == KindLayer && s.Expert != -1 {
			return fmt.Errorf("layer shard with expert %d", s.Expert)
		}
		if s.Kind == KindExpert && (s.Expert < 0 || s.Expert >= len(c.FFN[s.Layer].ExpertWidths)) {
			return fmt.Errorf("expert %d out of range", s.Expert)
		}
	default:
		return fmt.Errorf("kind %q unknown", s.Kind)
	}
	if s.Size < 0 || len(s.Pieces) == 0 {
		return fmt.Errorf("size %d with %d pieces", s.Size, len(s.Pieces))
	}
	if s.Size > MaxShardSize {
		return fmt.Errorf("size %d is more than the %d a shard may have", s.Size, int64(MaxShardSize))
	}
	var total int64
	for _, p := range s.Pieces {
		if p.Offset < 0 || p.Length < 0 || p.Offset > 1<<50 || p.Length > MaxShardSize {
			return fmt.Errorf("bad piece %+v", p)
		}
		if err := CheckFileName(p.File); err != nil {
			return fmt.Errorf("piece: %w", err)
		}
		total += p.Length // at most len(Pieces)·2^33: no overflow
	}
	if total != s.Size {
		return fmt.Errorf("pieces hold %d bytes, size says %d", total, s.Size)
	}
	if len(s.Tensors) == 0 {
		return errors.New("holds no tensors")
	}
	var end int64
	for _, t := range s.Tensors {
		if err := t.validate(s.Size); err != nil {
			return err
		}
		end = max(end, t.Offset+t.Length)
	}
	// A writer pads between tensors, never after the last one beyond the
	// alignment: bytes no tensor uses would only cost a download.
	if s.Size > end+Align {
		return fmt.Errorf("size %d, but its tensors end at byte %d", s.Size, end)
	}
	return nil
}

func (t *Tensor) rowCount() int {
	if t.Rows > 0 {
		return t.Rows
	}
	if len(t.Shape) > 1 {
		return t.Shape[0]
	}
	return 1
}

func (t *Tensor) validate(shardSize int64) error {
	d, err := tensor.ParseDType(t.DType)
	if err != nil {
		return fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	if len(t.Shape) == 0 || len(t.Shape) > 2 {
		return fmt.Errorf("tensor %s: shape %v must have 1 or 2 dimensions", t.Name, t.Shape)
	}
	for _, x := range t.Shape {
		if x <= 0 || x > 1<<24 {
			return fmt.Errorf("tensor %s: shape %v out of range", t.Name, t.Shape)
		}
	}
	rows, cols := 1, t.Shape[len(t.Shape)-1]
	if len(t.Shape) == 2 {
		rows = t.Shape[0]
	}
	if t.Rows != 0 || t.Row0 != 0 {
		if t.Rows <= 0 || t.Row0 < 0 || t.Row0+t.Rows > rows {
			return fmt.Errorf("tensor %s: rows [%d, %d) outside its %d rows", t.Name, t.Row0, t.Row0+t.Rows, rows)
		}
		rows = t.Rows
	}
	want, err := tensor.MatrixBytes(d, rows, cols)
	if err != nil {
		return fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	if t.Length != int64(want) {
		return fmt.Errorf("tensor %s: %d bytes, %s %dx%d needs %d", t.Name, t.Length, d, rows, cols, want)
	}
	if t.Offset < 0 || t.Offset > shardSize || t.Length > shardSize-t.Offset {
		return fmt.Errorf("tensor %s: bytes [%d, %d) outside the shard's %d", t.Name, t.Offset, t.Offset+t.Length, shardSize)
	}
	return nil
}

func sameShape(a, b []int) bool {
	for len(a) > 1 && a[0] == 1 {
		a = a[1:]
	}
	for len(b) > 1 && b[0] == 1 {
		b = b[1:]
	}
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
