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
)

// MaxSize is the largest manifest Parse accepts.
const MaxSize = 64 << 20

// Parse decodes and validates a manifest. Unknown fields are errors, so a
// typo in a hand-edited manifest is reported instead of ignored.
func Parse(b []byte) (*Manifest, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("manifest is %d bytes, more than the %d accepted", len(b), MaxSize)
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

// Validate checks the schema: the config is runnable, shard ids are unique,
// hashes are hex sha256, pieces add up to the shard size, every tensor lies
// inside its shard with the size its dtype and shape need, and the tensors
// cover exactly what the config requires, each row once.
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
	spec := map[string]model.TensorSpec{}
	for _, sp := range m.Model.Spec() {
		spec[sp.Name] = sp
	}
	covered := map[string]int{} // rows seen per tensor
	ids := map[string]bool{}
	for i := range m.Shards {
		s := &m.Shards[i]
		if ids[s.ID] {
			return fmt.Errorf("manifest: shard id %q appears twice", s.ID)
		}
		ids[s.ID] = true
		if err := s.validate(&m.Model); err != nil {
			return fmt.Errorf("manifest: shard %s: %w", s.ID, err)
		}
		for _, t := range s.Tensors {
			sp, ok := spec[t.Name]
			if !ok {
				return fmt.Errorf("manifest: shard %s: tensor %s is not part of this model", s.ID, t.Name)
			}
			if !sameShape(t.Shape, sp.Shape) {
				return fmt.Errorf("manifest: tensor %s: shape %v, the config needs %v", t.Name, t.Shape, sp.Shape)
			}
			if sp.Layer != s.Layer || sp.Expert != s.Expert {
				return fmt.Errorf("manifest: tensor %s is in shard %s, which is for layer %d expert %d", t.Name, s.ID, s.Layer, s.Expert)
			}
			covered[t.Name] += t.rowCount()
		}
	}
	for _, sp := range m.Model.Spec() {
		rows := 1
		if len(sp.Shape) > 1 {
			rows = sp.Shape[0]
		}
		if covered[sp.Name] != rows {
			if covered[sp.Name] == 0 {
				return fmt.Errorf("manifest: tensor %s is in no shard", sp.Name)
			}
			return fmt.Errorf("manifest: tensor %s: shards hold %d rows, it has %d", sp.Name, covered[sp.Name], rows)
		}
	}
	return nil
}

func checkFile(what, file, sum string, size int64) error {
	if file == "" {
		return fmt.Errorf("manifest: %s has no file", what)
	}
	if err := checkSHA(sum); err != nil {
		return fmt.Errorf("manifest: %s: %w", what, err)
	}
	if size < 0 {
		return fmt.Errorf("manifest: %s size %d", what, size)
	}
	return nil
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
	if err := checkSHA(s.SHA256); err != nil {
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
	var total int64
	for _, p := range s.Pieces {
		if p.File == "" || p.Offset < 0 || p.Length < 0 || p.Offset > 1<<50 || p.Length > 1<<40 {
			return fmt.Errorf("bad piece %+v", p)
		}
		if !strings.HasPrefix(p.File, "http://") && !strings.HasPrefix(p.File, "https://") {
			if strings.HasPrefix(p.File, "/") || strings.Contains(p.File, "..") || strings.Contains(p.File, "\\") {
				return fmt.Errorf("piece file %q must be a relative path inside the pack, or an http(s) URL", p.File)
			}
		}
		total += p.Length
	}
	if total != s.Size {
		return fmt.Errorf("pieces hold %d bytes, size says %d", total, s.Size)
	}
	if len(s.Tensors) == 0 {
		return errors.New("holds no tensors")
	}
	for _, t := range s.Tensors {
		if err := t.validate(s.Size); err != nil {
			return err
		}
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
