package distill

import (
	"fmt"
	"math"
)

// contributions returns, for each of the N calibration tokens, the share
// of the dense FFN output's magnitude carried by each group of neurons:
// ‖down[:, S_e]·a[S_e]‖ normalised to sum to 1 over the groups. acts is the
// neurons' activations [N, width] and down the teacher's [dim, width].
func contributions(acts []float32, N int, down []float32, dim, width int, groups [][]int) []float32 {
	E := len(groups)
	out := make([]float32, N*E)
	y := make([]float64, dim)
	for t := 0; t < N; t++ {
		a := acts[t*width : (t+1)*width]
		var total float64
		for e, g := range groups {
			clear(y)
			for _, i := range g {
				if a[i] == 0 {
					continue
				}
				ai := float64(a[i])
				for j := 0; j < dim; j++ {
					y[j] += float64(down[j*width+i]) * ai
				}
			}
			var s float64
			for _, v := range y {
				s += v * v
			}
			out[t*E+e] = float32(math.Sqrt(s))
			total += math.Sqrt(s)
		}
		if total > 0 {
			for e := 0; e < E; e++ {
				out[t*E+e] /= float32(total)
			}
		}
	}
	return out
}

// fitRouter solves the ridge regression W = argmin ‖H·Wᵀ − Y‖² + λ‖W‖² for
// the router W [E, dim] from hidden rows H [N, dim] and targets Y [N, E].
// Least squares onto the normalised contributions orders the experts of
// most tokens as the teacher does, which is all top-k selection uses.
func fitRouter(H []float32, N, D int, Y []float32, E int) ([]float32, error) {
	A := make([]float64, D*D)
	B := make([]float64, D*E)
	for t := 0; t < N; t++ {
		h := H[t*D : (t+1)*D]
		for i := 0; i < D; i++ {
			hi := float64(h[i])
			if hi == 0 {
				continue
			}
			row := A[i*D : (i+1)*D]
			for j := i; j < D; j++ {
				row[j] += hi * float64(h[j])
			}
			for e := 0; e < E; e++ {
				B[i*E+e] += hi * float64(Y[t*E+e])
			}
		}
	}
	var tr float64
	for i := 0; i < D; i++ {
		for j := 0; j < i; j++ {
			A[i*D+j] = A[j*D+i]
		}
		tr += A[i*D+i]
	}
	lambda := 1e-3*tr/float64(D) + 1e-9
	for i := 0; i < D; i++ {
		A[i*D+i] += lambda
	}
	if err := cholesky(A, D); err != nil {
		return nil, fmt.Errorf("router fit: %w", err)
	}
	W := make([]float32, E*D)
	col := make([]float64, D)
	for e := 0; e < E; e++ {
		for i := 0; i < D; i++ {
			col[i] = B[i*E+e]
		}
		cholSolve(A, D, col)
		for i := 0; i < D; i++ {
			W[e*D+i] = float32(col[i])
		}
	}
	return W, nil
}

// cholesky factors the symmetric positive definite A in place into L·Lᵀ,
// L in the lower triangle.
func cholesky(A []float64, n int) error {
	for j := 0; j < n; j++ {
		s := A[j*n+j]
		for k := 0; k < j; k++ {
			s -= A[j*n+k] * A[j*n+k]
		}
		if !(s > 0) {
			return fmt.Errorf("matrix is not positive definite at column %d", j)
		}
		d := math.Sqrt(s)
		A[j*n+j] = d
		for i := j + 1; i < n; i++ {
			s := A[i*n+j]
			ri, rj := A[i*n:i*n+j], A[j*n:j*n+j]
			for k := range rj {
				s -= ri[k] * rj[k]
			}
			A[i*n+j] = s / d
		}
	}
	return nil
}

// cholSolve solves L·Lᵀ·x = b in place.
func cholSolve(L []float64, n int, b []float64) {
	for i := 0; i < n; i++ {
		s := b[i]
		for k := 0; k < i; k++ {
			s -= L[i*n+k] * b[k]
		}
		b[i] = s / L[i*n+i]
	}
	for i := n - 1; i >= 0; i-- {
		s := b[i]
		for k := i + 1; k < n; k++ {
			s -= L[k*n+i] * b[k]
		}
		b[i] = s / L[i*n+i]
	}
}
