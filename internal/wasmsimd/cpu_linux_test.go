package wasmsimd

import (
	"syscall"
	"time"
)

// threadCPU returns the calling thread's user and system CPU time (the
// caller locks its goroutine to the thread), for benchmarks that report
// CPU time per op: wall time on the shared machines this runs on
// measures the other processes as much as the kernel.
func threadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
