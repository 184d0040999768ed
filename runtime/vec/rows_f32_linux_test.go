//go:build linux

package vec

import (
	"fmt"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/moderuntime/mode/internal/cputime"
)

// BenchmarkF32Shape runs a decode product's f32 rows through the four-row
// tile (Dot4x1, "tile") and through DotRows ("rows") on OLMoE's gate/up
// (512 × 1024), its down (1024 × 512) and Mixtral's down (512 × 1408), over
// enough matrices (96-128 MB) to stream them from memory, on 2 MB pages as
// the engine's weights are, one thread. Run with -count to interleave.
func BenchmarkF32Shape(b *testing.B) {
	for _, s := range []struct{ mats, rows, cols int }{{64, 512, 1024}, {64, 1024, 512}, {48, 512, 1408}} {
		m, err := syscall.Mmap(-1, 0, 4*s.mats*s.rows*s.cols, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { syscall.Munmap(m) })
		if err := syscall.Madvise(m, syscall.MADV_HUGEPAGE); err != nil {
			b.Fatal(err)
		}
		w := unsafe.Slice((*float32)(unsafe.Pointer(&m[0])), len(m)/4)
		for i := range w {
			w[i] = float32(i%7) * 0.25
		}
		x := make([]float32, s.cols)
		for i := range x {
			x[i] = 1
		}
		out := make([]float32, s.rows)
		for _, k := range []string{"tile", "rows"} {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", s.mats, s.rows, s.cols, k), func(b *testing.B) {
				c0, start := cputime.Now(), time.Now()
				for range b.N {
					for mi := range s.mats {
						mw := w[mi*s.rows*s.cols : (mi+1)*s.rows*s.cols]
						if k == "rows" {
							DotRows(out, mw, s.cols, x, s.cols)
							continue
						}
						var o [4]float32
						for i := 0; i < s.rows; i += 4 {
							Dot4x1(&o, mw[i*s.cols:], s.cols, x, s.cols)
							copy(out[i:], o[:])
						}
					}
				}
				bytes := float64(len(m)) * float64(b.N)
				b.ReportMetric(bytes/time.Since(start).Seconds()/1e9, "GB/s")
				b.ReportMetric(bytes/(cputime.Now()-c0).Seconds()/1e9, "cpuGB/s")
			})
		}
	}
}
