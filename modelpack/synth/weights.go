package synth

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/runtime/tensor"
)

// generate fills one tensor in dt.
func generate(s tensorSpec, seed uint64, dt tensor.DType, layers int) *tensor.Tensor {
	v := values(s, seed, layers)
	if m := s.matrix; m != nil {
		t := make([]float32, len(v))
		for e := range m[0] {
			for r := range m[1] {
				for c := range m[2] {
					t[(e*m[2]+c)*m[1]+r] = v[(e*m[1]+r)*m[2]+c]
				}
			}
		}
		v = t
	}
	size := dt.ElemSize()
	data := make([]byte, len(v)*size)
	for i, x := range v {
		switch dt {
		case tensor.F32:
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
		case tensor.F16:
			binary.LittleEndian.PutUint16(data[2*i:], tensor.F32ToF16(x))
		case tensor.BF16:
			binary.LittleEndian.PutUint16(data[2*i:], tensor.F32ToBF16(x))
		}
	}
	return &tensor.Tensor{Name: s.name, DType: dt, Shape: slices.Clone(s.shape), Data: data}
}

// generateMXFP4 is one of the two U8 tensors of MXFP4 experts: the values
// of s's matrix (drawn under the name both tensors share) quantised, then
// its blocks or its scales.
func generateMXFP4(s tensorSpec, seed uint64, layers int) ([]byte, error) {
	base := s
	base.name = strings.TrimSuffix(strings.TrimSuffix(s.name, "_blocks"), "_scales")
	v := values(base, seed, layers)
	E, rows, cols := s.matrix[0], s.matrix[1], s.matrix[2]
	q, err := tensor.Quantize(tensor.FromF32(base.name, []int{E * rows, cols}, v), tensor.MXFP4)
	if err != nil {
		return nil, err
	}
	nb := E * rows * cols / 32
	pad := (nb + 3) &^ 3 // the scales array is padded to a word
	if s.mxfp4 == "scales" {
		return q.Data[:nb], nil
	}
	return q.Data[pad:], nil
}

// values draws one tensor's values. Each tensor has its own PCG stream,
// keyed by the seed and a hash of its name, so a tensor's values do not
// depend on which other tensors the model has.
func values(s tensorSpec, seed uint64, layers int) []float32 {
	h := fnv.New64a()
	h.Write([]byte(s.name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	n := 1
	for _, d := range s.shape {
		n *= d
	}
	if s.matrix != nil {
		n = s.matrix[0] * s.matrix[1] * s.matrix[2]
	}
	fanIn := float64(s.shape[len(s.shape)-1])
	if s.matrix != nil {
		fanIn = float64(s.matrix[2])
	}
	var mean, std float64
	switch s.init {
	case initLinear, initRouter:
		std = 1 / math.Sqrt(fanIn)
	case initOut:
		// Each layer adds two such projections to the residual stream;
		// scaling by 1/sqrt(2*layers) keeps its variance bounded with depth.
		std = 1 / math.Sqrt(fanIn) / math.Sqrt(2*float64(layers))
	case initEmbed:
		std = 1
	case initNorm:
		mean, std = 1, 0.05
	case initBias:
		std = 0.02
	case initSink:
		std = 1
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(mean + std*rng.NormFloat64())
	}
	return v
}

// lazyTensor is a tensor generated while it is written.
type lazyTensor struct {
	desc *tensor.Tensor // name, dtype, shape
	fill func() ([]byte, error)
	u8   bool // a U8 tensor: fill runs when it is added
}

func (t lazyTensor) size() int64 {
	if t.u8 {
		n := int64(1)
		for _, d := range t.desc.Shape {
			n *= int64(d)
		}
		return n
	}
	n, _ := safetensors.ByteLen(t.desc.DType, t.desc.Shape)
	return n
}

// writeWeights writes the tensors as model.safetensors, or, when they
// exceed maxShard bytes, as numbered shards plus an index, the way
// transformers' save_pretrained names them. Each tensor is generated just
// before it is written, so memory holds one tensor at a time.
func writeWeights(dir string, ts []lazyTensor, maxShard int64, files int) error {
	slices.SortFunc(ts, func(a, b lazyTensor) int { return strings.Compare(a.desc.Name, b.desc.Name) })
	var total int64
	for _, t := range ts {
		total += t.size()
	}
	if files <= 1 && (maxShard <= 0 || total <= maxShard) {
		return writeFile(filepath.Join(dir, safetensors.SingleFile), ts)
	}
	var shards [][]lazyTensor
	if files > 1 {
		// Tensor i goes to the file its first byte falls in when the
		// checkpoint is cut into files equal parts; a file left empty by a
		// tensor larger than a part is dropped.
		shards = make([][]lazyTensor, files)
		var at int64
		for _, t := range ts {
			i := int(at * int64(files) / max(total, 1))
			shards[i] = append(shards[i], t)
			at += t.size()
		}
		shards = slices.DeleteFunc(shards, func(s []lazyTensor) bool { return len(s) == 0 })
	} else {
		var size int64
		for _, t := range ts {
			if len(shards) == 0 || size > 0 && size+t.size() > maxShard {
				shards = append(shards, nil)
				size = 0
			}
			shards[len(shards)-1] = append(shards[len(shards)-1], t)
			size += t.size()
		}
	}
	weightMap := map[string]string{}
	for i, shard := range shards {
		file := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		if err := writeFile(filepath.Join(dir, file), shard); err != nil {
			return err
		}
		for _, t := range shard {
			weightMap[t.desc.Name] = file
		}
	}
	index := map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap}
	return writeJSON(filepath.Join(dir, safetensors.IndexFile), index)
}

func writeFile(path string, ts []lazyTensor) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("synth: %w", cerr)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := safetensors.NewWriter(bw)
	w.SetMetadata("format", "pt")
	for _, t := range ts {
		if t.u8 {
			data, err := t.fill()
			if err == nil {
				err = w.AddU8(t.desc.Name, t.desc.Shape, data)
			}
			if err != nil {
				return fmt.Errorf("synth: %s: %w", t.desc.Name, err)
			}
			continue
		}
		if err := w.AddLazy(t.desc, t.fill); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// removeCheckpoint deletes checkpoint files an earlier Write may have left,
// so the directory never holds two checkpoints at once.
func removeCheckpoint(dir string) error {
	old, err := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	if err != nil {
		return err
	}
	old = append(old, filepath.Join(dir, safetensors.SingleFile), filepath.Join(dir, safetensors.IndexFile))
	for _, path := range old {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("synth: %w", err)
		}
	}
	return nil
}

// writeJSON writes v as indented JSON with a final newline.
func writeJSON(path string, v any) error {
	b, err := marshal(v)
	if err != nil {
		return fmt.Errorf("synth: encoding %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}
