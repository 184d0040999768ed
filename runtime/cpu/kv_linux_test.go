package cpu

import (
	"syscall"
	"testing"
	"unsafe"
)

// TestKVBackResident checks that what store reports backed is resident
// before any of it past the stored row is written: populate's madvise took
// effect, on every page of the range.
func TestKVBackResident(t *testing.T) {
	b := New(Options{})
	defer b.Close()
	const dim, seq = 1024, 256 // 1 MB of k per layer, 4 KB rows
	c, err := b.NewKV(1, seq, dim)
	if err != nil {
		t.Fatal(err)
	}
	kc := c.(*kv)
	kc.store(0, false, 0, make([]float32, dim))
	n := kc.ready[0][0]
	if n != dim+readyAhead/4 {
		t.Fatalf("backed %d elements, want %d", n, dim+readyAhead/4)
	}
	const page = 4096
	p := uintptr(unsafe.Pointer(&kc.k[0][0]))
	lo, hi := (p+page-1)&^(page-1), (p+uintptr(n)*4)&^(page-1) // the whole pages inside
	start := unsafe.Add(unsafe.Pointer(&kc.k[0][0]), lo-p)
	vec := make([]byte, (hi-lo)/page)
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(start), hi-lo, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	for i, v := range vec {
		if v&1 == 0 {
			t.Errorf("page %d of %d of the backed range is not resident", i, len(vec))
		}
	}
}
