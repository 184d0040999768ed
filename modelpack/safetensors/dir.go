package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moderuntime/mode/runtime/tensor"
)

// File names of a Hugging Face checkpoint directory.
const (
	SingleFile = "model.safetensors"
	IndexFile  = "model.safetensors.index.json"
)

// Dir is a checkpoint directory seen as one namespace of tensors: either a
// single model.safetensors, or the shards that model.safetensors.index.json
// maps every tensor to.
type Dir struct {
	path  string
	files []*Reader          // open shards in file-name order
	owner map[string]*Reader // tensor name -> the shard holding it
	names []string           // sorted
}

// OpenDir opens the checkpoint in dir. Like transformers, it prefers a
// single model.safetensors over an index when both exist. With an index,
// every shard it names is opened and checked: a missing shard, a tensor the
// index maps to a shard that lacks it, and a tensor in a shard that the
// index does not list are all errors.
func OpenDir(dir string) (*Dir, error) {
	single := filepath.Join(dir, SingleFile)
	if _, err := os.Stat(single); err == nil {
		r, err := Open(single)
		if err != nil {
			return nil, err
		}
		d := &Dir{path: dir, files: []*Reader{r}, owner: map[string]*Reader{}, names: r.Names()}
		for _, name := range d.names {
			d.owner[name] = r
		}
		return d, nil
	}
	index := filepath.Join(dir, IndexFile)
	raw, err := readIndex(index)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %s: neither %s nor %s exists", dir, SingleFile, IndexFile)
	}
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	weightMap, err := ParseIndex(index, raw)
	if err != nil {
		return nil, err
	}
	d := &Dir{path: dir, owner: make(map[string]*Reader, len(weightMap))}
	if err := d.openShards(index, weightMap); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// MaxIndexBytes bounds model.safetensors.index.json. The largest real ones
// (thousands of tensors) are a few megabytes.
const MaxIndexBytes = 64 << 20

// readIndex reads an index file after checking its size, so a huge or
// endless file costs nothing.
func readIndex(index string) ([]byte, error) {
	f, err := os.Open(index)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > MaxIndexBytes {
		return nil, fmt.Errorf("%s: %d bytes and mode %v: want a regular file of at most %d bytes", index, fi.Size(), fi.Mode(), MaxIndexBytes)
	}
	return io.ReadAll(io.LimitReader(f, MaxIndexBytes+1))
}

// ParseIndex returns the weight_map of a model.safetensors.index.json after checking that it is
// well-formed and names only files inside the directory. The key is
// "weight_map" exactly: encoding/json would also take "Weight_Map".
func ParseIndex(index string, raw []byte) (map[string]string, error) {
	if len(raw) > MaxIndexBytes {
		return nil, fmt.Errorf("safetensors: %s: %d bytes, more than the %d accepted", index, len(raw), MaxIndexBytes)
	}
	if err := checkJSON(raw); err != nil {
		var dup *duplicateKeyError
		if errors.As(err, &dup) && len(dup.path) == 1 && dup.path[0] == "weight_map" {
			return nil, fmt.Errorf("safetensors: %s: tensor %q listed more than once in weight_map", index, dup.key)
		}
		return nil, fmt.Errorf("safetensors: %s: invalid JSON: %w", index, err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", index, err)
	}
	var weightMap map[string]string
	if wm, ok := doc["weight_map"]; ok {
		if err := json.Unmarshal(wm, &weightMap); err != nil {
			return nil, fmt.Errorf("safetensors: %s: weight_map: %w", index, err)
		}
	}
	if len(weightMap) == 0 {
		return nil, fmt.Errorf("safetensors: %s: weight_map is missing or empty", index)
	}
	for name, file := range weightMap {
		// A shard path must stay inside the directory: an index must not
		// make us open arbitrary files. A backslash is a separator on
		// Windows and in some URL parsers, so it is refused on every OS.
		if !filepath.IsLocal(file) || filepath.Base(file) != file || file == "." || strings.ContainsAny(file, `/\`) {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: shard %q is not a file name in the directory", index, name, file)
		}
	}
	return weightMap, nil
}

func (d *Dir) openShards(index string, weightMap map[string]string) error {
	byFile := map[string]*Reader{}
	for _, file := range slices.Compact(slices.Sorted(maps.Values(weightMap))) {
		path := filepath.Join(d.path, file)
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("safetensors: %s: tensor %q: shard %s is missing: %w", index, firstTensorIn(weightMap, file), file, err)
		}
		r, err := Open(path)
		if err != nil {
			return err // names the shard and the problem
		}
		byFile[file] = r
		d.files = append(d.files, r)
	}
	for name, file := range weightMap {
		r := byFile[file]
		if _, ok := r.Info(name); !ok {
			return fmt.Errorf("safetensors: %s: tensor %q is mapped to %s, which does not contain it", index, name, r.Name())
		}
		d.owner[name] = r
	}
	for _, r := range d.files {
		for _, name := range r.Names() {
			if d.owner[name] != r {
				return fmt.Errorf("safetensors: %s: tensor %q is not listed in %s (or is mapped to another shard)", r.Name(), name, index)
			}
		}
	}
	d.names = slices.Sorted(maps.Keys(d.owner))
	return nil
}

// firstTensorIn names a tensor mapped to file, for error messages.
func firstTensorIn(weightMap map[string]string, file string) string {
	var first string
	for name, f := range weightMap {
		if f == file && (first == "" || name < first) {
			first = name
		}
	}
	return first
}

// Close closes every shard.
func (d *Dir) Close() error {
	var errs []error
	for _, r := range d.files {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}

// Path is the directory.
func (d *Dir) Path() string { return d.path }

// Files lists the paths of the safetensors files, sorted.
func (d *Dir) Files() []string {
	paths := make([]string, len(d.files))
	for i, r := range d.files {
		paths[i] = r.Name()
	}
	return paths
}

// Names lists every tensor in sorted order.
func (d *Dir) Names() []string { return slices.Clone(d.names) }

// Info describes the named tensor; Info.File names its shard.
func (d *Dir) Info(name string) (Info, bool) {
	r, ok := d.owner[name]
	if !ok {
		return Info{}, false
	}
	return r.Info(name)
}

// Read loads the named tensor from its shard.
func (d *Dir) Read(name string) (*tensor.Tensor, error) {
	r, ok := d.owner[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", d.path, name)
	}
	return r.Read(name)
}

// ReadRows loads rows [row0, row0+rows) of the named tensor from its shard.
func (d *Dir) ReadRows(name string, row0, rows int) (*tensor.Tensor, error) {
	r, ok := d.owner[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", d.path, name)
	}
	return r.ReadRows(name, row0, rows)
}

// ReadU8Rows is Reader.ReadU8Rows on the named tensor's shard.
func (d *Dir) ReadU8Rows(name string, row0, rows int) ([]byte, error) {
	r, ok := d.owner[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", d.path, name)
	}
	return r.ReadU8Rows(name, row0, rows)
}
