package shard

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// TestAdviseHugePages checks that a buffer the size of a shard ends up in a
// mapping Linux marks for huge pages ("hg" in /proc/self/smaps' VmFlags).
func TestAdviseHugePages(t *testing.T) {
	big := make([]byte, 3<<20)
	adviseHugePages(big)
	flags, err := vmFlags(uintptr(unsafe.Pointer(&big[1<<20])))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Fatalf("VmFlags of a 3 MB buffer after the advice: %q, want hg among them", flags)
	}
}

// vmFlags returns the VmFlags line of the mapping of /proc/self/smaps that
// holds address a.
func vmFlags(a uintptr) (string, error) {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		var lo, hi uintptr
		// A mapping's first line starts "lo-hi"; its other lines are
		// "Key: value", whose keys do not parse as two hex numbers.
		if n, _ := fmt.Sscanf(l, "%x-%x", &lo, &hi); n == 2 {
			in = lo <= a && a < hi
			continue
		}
		if in && strings.HasPrefix(l, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmFlags:")), nil
		}
	}
	return "", fmt.Errorf("no mapping holds %#x in /proc/self/smaps", a)
}
