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

// generate fills one tensor. Each tensor has its own PCG stream, keyed by
// the seed and a hash of its name, so a tensor's values do not depend on
// which other tensors the model has.
func generate(s tensorSpec, seed uint64, dt tensor.DType, layers int) *tensor.Tensor {
	h := fnv.New64a()
	h.Write([]byte(s.name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	n := 1
	for _, d := range s.shape {
		n *= d
	}
	fanIn := float64(s.shape[len(s.shape)-1])
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
	}
	size := dt.ElemSize()
	data := make([]byte, n*size)
	for i := range n {
		v := float32(mean + std*rng.NormFloat64())
		switch dt {
		case tensor.F32:
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		case tensor.F16:
			binary.LittleEndian.PutUint16(data[2*i:], tensor.F32ToF16(v))
		case tensor.BF16:
			binary.LittleEndian.PutUint16(data[2*i:], tensor.F32ToBF16(v))
		}
	}
	return &tensor.Tensor{Name: s.name, DType: dt, Shape: slices.Clone(s.shape), Data: data}
}

// lazyTensor is a tensor generated while it is written.
type lazyTensor struct {
	desc *tensor.Tensor // name, dtype, shape
	fill func() ([]byte, error)
}

func (t lazyTensor) size() int64 {
	n, _ := safetensors.ByteLen(t.desc.DType, t.desc.Shape)
	return n
}

// writeWeights writes the tensors as model.safetensors, or, when they
// exceed maxShard bytes, as numbered shards plus an index, the way
// transformers' save_pretrained names them. Each tensor is generated just
// before it is written, so memory holds one tensor at a time.
func writeWeights(dir string, ts []lazyTensor, maxShard int64) error {
	slices.SortFunc(ts, func(a, b lazyTensor) int { return strings.Compare(a.desc.Name, b.desc.Name) })
	var total int64
	for _, t := range ts {
		total += t.size()
	}
	if maxShard <= 0 || total <= maxShard {
		return writeFile(filepath.Join(dir, safetensors.SingleFile), ts)
	}
	var shards [][]lazyTensor
	var size int64
	for _, t := range ts {
		if len(shards) == 0 || size > 0 && size+t.size() > maxShard {
			shards = append(shards, nil)
			size = 0
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], t)
		size += t.size()
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
