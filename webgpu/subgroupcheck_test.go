package webgpu_test

import (
	"testing"

	"github.com/moderuntime/mode/webgpu"
)

// TestCheckSubgroups: the start-up check's matvec gives exact sums on the
// workgroup-memory path (natively the only one here; in Chromium, New runs
// it through subgroups and e2e TestWebGPU sees them kept), so the check
// itself cannot turn sound subgroups off.
func TestCheckSubgroups(t *testing.T) {
	b := newBackend(t, webgpu.Options{})
	ok, err := webgpu.CheckSubgroups(b)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Error("the subgroup check's matvec gave wrong sums on the workgroup-memory path")
	}
}
