package pack

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// padMultiple is the width padded FFNs are rounded up to: the block of
// q8_0 and q4_0, the formats every block format falls back through.
const padMultiple = 32

// paddedSource serves a model whose FFNs of a width no block format holds
// (a distilled expert of 172 neurons, say) are widened with zero neurons to
// the next multiple of 32: zero gate and up rows, zero down columns. A zero
// neuron's activation is silu(0)·0 = 0 and its down column is zero, so the
// FFN computes the same function, while its down projection, whose rows are
// the FFN's width long, is stored in the block format instead of falling
// back to f16 (RATIONALE.md, "Quantisation").
type paddedSource struct {
	Source
	cfg   model.Config
	dim   int
	width map[string][2]int // widened gate, up and down tensors: source and padded width
}

func (p *paddedSource) Config() model.Config { return p.cfg }

// Read returns rows of a widened tensor as f32 with the zero neurons in
// place, and any other tensor as the source has it.
func (p *paddedSource) Read(name string, row0, rows int) (*tensor.Tensor, error) {
	wd, ok := p.width[name]
	if !ok {
		return p.Source.Read(name, row0, rows)
	}
	from, to := wd[0], wd[1]
	if strings.HasSuffix(name, ".down") { // [dim, width]: each row widened with zero columns
		v, err := p.readF32(name, row0, rows)
		if err != nil {
			return nil, err
		}
		if len(v)%from != 0 {
			return nil, fmt.Errorf("tensor %s: %d values are not rows of %d", name, len(v), from)
		}
		n := len(v) / from
		out := make([]float32, n*to)
		for r := range n {
			copy(out[r*to:], v[r*from:(r+1)*from])
		}
		return tensor.FromF32(name, []int{n, to}, out), nil
	}
	// gate or up, [width, dim]: the source's rows, then zero rows
	if rows == 0 {
		row0, rows = 0, to
	}
	if row0 < 0 || row0+rows > to {
		return nil, fmt.Errorf("tensor %s: rows [%d, %d) outside its %d", name, row0, row0+rows, to)
	}
	out := make([]float32, rows*p.dim)
	if have := min(row0+rows, from) - row0; have > 0 {
		v, err := p.readF32(name, row0, have)
		if err != nil {
			return nil, err
		}
		if len(v) != have*p.dim {
			return nil, fmt.Errorf("tensor %s: %d values for %d rows of %d", name, len(v), have, p.dim)
		}
		copy(out, v)
	}
	return tensor.FromF32(name, []int{rows, p.dim}, out), nil
}

// readF32 reads rows of a source tensor as float32 values.
func (p *paddedSource) readF32(name string, row0, rows int) ([]float32, error) {
	t, err := p.Source.Read(name, row0, rows)
	if err != nil {
		return nil, err
	}
	v, err := t.Float32s()
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	return v, nil
}

// padFFNs returns src with every FFN widened that a block format would
// otherwise store partly in a fallback format, when widening makes the FFN
// smaller; it returns nil when nothing is widened. expert and dense are the
// formats of routed experts and of the other FFNs (Options.Quant and the
// resolved DenseQuant).
func padFFNs(src Source, cfg model.Config, expert, dense tensor.DType) *paddedSource {
	p := &paddedSource{Source: src, cfg: cfg, dim: cfg.Dim, width: map[string][2]int{}}
	p.cfg.FFN = slices.Clone(cfg.FFN)
	widen := func(widths []int, q tensor.DType, name func(i int, part string) string) []int {
		out := slices.Clone(widths)
		for i, w := range widths {
			to := (w + padMultiple - 1) / padMultiple * padMultiple
			if to == w || tensor.BlockSize(q) <= 1 || ffnBytes(cfg.Dim, to, q) >= ffnBytes(cfg.Dim, w, q) {
				continue
			}
			out[i] = to
			for _, part := range []string{"gate", "up", "down"} {
				p.width[name(i, part)] = [2]int{w, to}
			}
		}
		return out
	}
	for l := range p.cfg.FFN {
		f := &p.cfg.FFN[l]
		f.SharedWidths = widen(f.SharedWidths, dense, func(i int, part string) string { return model.SharedName(l, i, part) })
		f.ExpertWidths = widen(f.ExpertWidths, expert, func(i int, part string) string { return model.ExpertName(l, i, part) })
		// Later blocks of deeper experts are FFNs of their own width too; a
		// zero neuron adds act(0)·0 = 0 whatever the activation.
		f.ExpertArch = slices.Clone(f.ExpertArch)
		for e := range f.ExpertArch {
			f.ExpertArch[e].Extra = widen(f.ExpertArch[e].Extra, expert, func(i int, part string) string { return model.BlockName(l, e, i+1, part) })
		}
	}
	if len(p.width) == 0 {
		return nil
	}
	return p
}

// ffnBytes is the stored size of an FFN of the given width when format q
// is asked for, each matrix in the format the writer picks for its width.
func ffnBytes(dim, width int, q tensor.DType) int {
	n := 0
	for _, shape := range [][2]int{{width, dim}, {width, dim}, {dim, width}} {
		b, _ := tensor.MatrixBytes(storedFormat(q, shape[1]), shape[0], shape[1])
		n += b
	}
	return n
}
