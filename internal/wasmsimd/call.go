package wasmsimd

import "fmt"

// Kernel names as Ready and the load note report them.
const (
	ImplSIMD = "simd128"
	ImplGo   = "go"
)

// GuestModule is the instance name a wasip1 host gives the Go module, so
// that the kernel module can import its memory ("memory") from it.
const GuestModule = "mode:guest"

// Load results a host returns from modesimd.load.
const (
	loadOK        = 1
	loadNone      = 0  // the host offers no kernels, or was told not to
	loadNoSIMD    = -1 // the WebAssembly engine has no SIMD128
	loadBadModule = -2 // the module did not compile or instantiate
)

func loadNote(code int32) string {
	switch code {
	case loadOK:
		return "SIMD128 kernels for q8_0, q4_0, q4_k, f16 and f32 weights, attention, softmax, SwiGLU, RMSNorm and activation quantisation"
	case loadNone:
		return "the host offers no SIMD128 kernels (or was asked not to use them): pure-Go kernels"
	case loadNoSIMD:
		return "this WebAssembly engine has no SIMD128: pure-Go kernels"
	case loadBadModule:
		return "the SIMD128 kernel module failed to instantiate: pure-Go kernels"
	}
	return fmt.Sprintf("the host answered %d to modesimd.load: pure-Go kernels", code)
}

// checkMul panics, as an out-of-range slice index would, unless the
// buffers hold everything a kernel call with these sizes reads or writes.
// It returns false when there is nothing to compute.
func checkMul(ldst, ds, lwd, lwq, lxd, lxq, qb, rows, nb, trows int) bool {
	if rows <= 0 || trows <= 0 {
		return false
	}
	if nb <= 0 || ds < rows || ldst < (trows-1)*ds+rows || lwd < nb*rows || lwq < qb*nb*rows ||
		lxd < nb*trows || lxq < 32*nb*trows || int64(ds)*int64(trows)+int64(qb*nb*rows) >= 1<<31 {
		panic(fmt.Sprintf("wasmsimd: buffers too small for %d×%d blocks × %d rows (dst %d stride %d, wd %d, wq %d, xd %d, xq %d)",
			rows, nb, trows, ldst, ds, lwd, lwq, lxd, lxq))
	}
	return true
}

// checkQ4_K is checkMul for the q4_k kernel.
func checkQ4_K(ldst, ds, ldm, lsc, lmn, lqs, lxd, lg, lxq, rows, nb, trows int) bool {
	if rows <= 0 || trows <= 0 {
		return false
	}
	if nb <= 0 || nb%8 != 0 || ds < rows || ldst < (trows-1)*ds+rows || ldm < 4*nb/8*rows || lsc < nb*rows || lmn < nb*rows ||
		lqs < 16*nb*rows || lxd < nb*trows || lg < nb*trows || lxq < 32*nb*trows || int64(ds)*int64(trows)+int64(16*nb*rows) >= 1<<31 {
		panic(fmt.Sprintf("wasmsimd: buffers too small for q4_k %d×%d sub-blocks × %d rows (dst %d stride %d, dm %d, sc %d, mn %d, qs %d, xd %d, g %d, xq %d)",
			rows, nb, trows, ldst, ds, ldm, lsc, lmn, lqs, lxd, lg, lxq))
	}
	return true
}

// checkFloat is checkMul for the f32 (es = 4) and f16 (es = 2) kernels.
func checkFloat(ldst, ds, lw, lx, es, rows, n, trows int) bool {
	if rows <= 0 || trows <= 0 {
		return false
	}
	if n <= 0 || ds < rows || ldst < (trows-1)*ds+rows || lw < n*rows || lx < n*trows ||
		int64(ds)*int64(trows)+int64(es*n)*int64(rows)+int64(4*n)*int64(trows) >= 1<<31 {
		panic(fmt.Sprintf("wasmsimd: buffers too small for %d×%d × %d rows (dst %d stride %d, w %d, x %d)",
			rows, n, trows, ldst, ds, lw, lx))
	}
	return true
}

// checkAttn checks an attention kernel's n rows of hd values at stride
// in a cache of lcache floats; it returns false when there is nothing to compute.
func checkAttn(n, hd, stride, lcache int) bool {
	if n <= 0 || hd <= 0 {
		return false
	}
	if stride < hd || lcache < (n-1)*stride+hd || int64(n)*int64(stride) >= 1<<29 {
		panic(fmt.Sprintf("wasmsimd: %d rows of %d at stride %d do not fit a cache of %d", n, hd, stride, lcache))
	}
	return true
}
