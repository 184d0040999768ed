package gptq

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/moderuntime/mode/runtime/tensor"
)

// DefaultDamp is the fraction of the mean diagonal of H added to its
// diagonal before inversion (GPTQ's percdamp): it keeps H invertible when
// calibration saw fewer rows than the matrix has inputs, and bounds how far
// one column's error is pushed onto the others.
const DefaultDamp = 0.01

// Quantize stores t ([rows, cols], a plain format) in the block format to,
// choosing each element's rounding so that ‖(W−Q)·X‖² over the calibration
// inputs summarised by h is small rather than each element's own error
// (Frantar et al., "GPTQ", 2022): the rows are quantised column by column,
// and each column's rounding error is spread over the columns not yet
// quantised in proportion to the inverse Hessian, so inputs that move
// together cancel each other's errors. A block's scale (q4_k: a sub-block's
// scale and minimum) is fixed from the block's values as updated when the
// quantiser reaches it, with the format's own rule, so the bytes are a
// valid pack tensor like any other. With h nil it is tensor.Quantize.
func Quantize(t *tensor.Tensor, to tensor.DType, h *Hessian, damp float64) (*tensor.Tensor, error) {
	if h == nil {
		return tensor.Quantize(t, to)
	}
	rows, cols := t.Rows(), t.Cols()
	if h.N != cols {
		return nil, fmt.Errorf("gptq: tensor %s has %d columns, its statistics %d", t.Name, cols, h.N)
	}
	if cols%tensor.BlockSize(to) != 0 {
		return nil, fmt.Errorf("gptq: tensor %s: %v needs a multiple of %d columns, have %d", t.Name, to, tensor.BlockSize(to), cols)
	}
	x, err := t.Float32s()
	if err != nil {
		return nil, fmt.Errorf("gptq: %w", err)
	}
	if err := tensor.CheckFinite(t.Name, x); err != nil {
		return nil, fmt.Errorf("gptq: %w", err)
	}
	if damp <= 0 {
		damp = DefaultDamp
	}
	u, err := invChol(h, damp)
	if err != nil {
		return nil, fmt.Errorf("gptq: tensor %s: %w", t.Name, err)
	}
	enc, err := tensor.NewEncoder(t.Name, to, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("gptq: %w", err)
	}
	// Rows are independent: each uses the same U and touches only its
	// own bytes of the encoder.
	workers := min(runtime.GOMAXPROCS(0), rows)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			w := make([]float32, cols)
			for r := g; r < rows; r += workers {
				copy(w, x[r*cols:(r+1)*cols])
				quantizeRow(enc, r, w, u)
			}
		})
	}
	wg.Wait()
	out := enc.Tensor()
	out.Shape = append([]int(nil), t.Shape...)
	return out, nil
}

// quantizeRow quantises row r (its values in w, overwritten) with the
// upper Cholesky factor u of H⁻¹.
func quantizeRow(enc *tensor.Encoder, r int, w []float32, u []float64) {
	n := len(w)
	for j := range n {
		if j%tensor.FitSize == 0 {
			enc.Fit(r, j, w[j:])
		}
		q := enc.Set(r, j, w[j])
		e := (float64(w[j]) - float64(q)) / u[j*n+j]
		row := u[j*n:]
		for k := j + 1; k < n; k++ {
			w[k] -= float32(e * row[k])
		}
	}
}

// invChol returns U, upper triangular with H⁻¹ = Uᵀ·U, of the damped H.
// An input calibration never exercised (zero diagonal) gets a unit
// diagonal: its weights are rounded on their own, nothing is pushed onto
// them from elsewhere beyond what the damping allows. If H is still not
// positive definite the damping grows tenfold, up to three times.
func invChol(h *Hessian, damp float64) ([]float64, error) {
	n := h.N
	var err error
	for try := 0; try < 4; try, damp = try+1, damp*10 {
		a := make([]float64, n*n)
		copy(a, h.Sum)
		var mean float64
		for i := range n {
			if a[i*n+i] <= 0 {
				for k := range n {
					a[i*n+k], a[k*n+i] = 0, 0
				}
				a[i*n+i] = 1
			}
			mean += a[i*n+i]
		}
		mean /= float64(n)
		for i := range n {
			a[i*n+i] += damp * mean
		}
		if err = cholesky(a, n); err != nil {
			continue
		}
		inv := invFromChol(a, n)
		if err = cholesky(inv, n); err != nil {
			continue
		}
		// inv now holds L with H⁻¹ = L·Lᵀ in its lower triangle: U = Lᵀ.
		u := make([]float64, n*n)
		for i := range n {
			for j := 0; j <= i; j++ {
				u[j*n+i] = inv[i*n+j]
			}
		}
		return u, nil
	}
	return nil, err
}

// cholesky overwrites the lower triangle of the symmetric a with L, a =
// L·Lᵀ; the upper triangle is left as it was.
func cholesky(a []float64, n int) error {
	for j := range n {
		s := a[j*n+j]
		for k := range j {
			s -= a[j*n+k] * a[j*n+k]
		}
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("calibration statistics are not positive definite (pivot %d is %g)", j, s)
		}
		d := math.Sqrt(s)
		a[j*n+j] = d
		for i := j + 1; i < n; i++ {
			s := a[i*n+j]
			for k := range j {
				s -= a[i*n+k] * a[j*n+k]
			}
			a[i*n+j] = s / d
		}
	}
	return nil
}

// invFromChol returns (L·Lᵀ)⁻¹ as a full symmetric matrix, given L in the
// lower triangle of l.
func invFromChol(l []float64, n int) []float64 {
	// Li = L⁻¹ (lower triangular), by forward substitution column by column.
	li := make([]float64, n*n)
	for c := range n {
		li[c*n+c] = 1 / l[c*n+c]
		for i := c + 1; i < n; i++ {
			var s float64
			for k := c; k < i; k++ {
				s += l[i*n+k] * li[k*n+c]
			}
			li[i*n+c] = -s / l[i*n+i]
		}
	}
	// (L·Lᵀ)⁻¹ = L⁻ᵀ·L⁻¹: entry (i, j) = Σ_k Li[k][i]·Li[k][j], k ≥ max(i, j).
	inv := make([]float64, n*n)
	for i := range n {
		for j := 0; j <= i; j++ {
			var s float64
			for k := i; k < n; k++ {
				s += li[k*n+i] * li[k*n+j]
			}
			inv[i*n+j], inv[j*n+i] = s, s
		}
	}
	return inv
}

// Quantizer returns a pack.Options.Quantizer that runs Quantize with the
// statistics of each tensor's name (plain rounding for a tensor without
// any).
//
// A matrix wider than its statistics is taken to have inputs that are
// always zero past them: the pack writer widens FFNs of odd width with zero
// neurons (pack.paddedSource), whose down-projection inputs are zero.
func (s *Stats) Quantizer(damp float64) func(*tensor.Tensor, tensor.DType) (*tensor.Tensor, error) {
	return func(t *tensor.Tensor, to tensor.DType) (*tensor.Tensor, error) {
		h := s.Get(t.Name)
		if h != nil && h.N < t.Cols() {
			h = h.widened(t.Cols())
		}
		return Quantize(t, to, h, damp)
	}
}

// widened returns h (as Get returns it, symmetric) for n ≥ h.N inputs, the
// extra ones always zero.
func (h *Hessian) widened(n int) *Hessian {
	w := &Hessian{N: n, Sum: make([]float64, n*n), Rows: h.Rows, full: true}
	for i := range h.N {
		copy(w.Sum[i*n:i*n+h.N], h.Sum[i*h.N:(i+1)*h.N])
	}
	return w
}
