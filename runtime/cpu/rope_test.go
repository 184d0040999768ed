package cpu

import (
	"slices"
	"testing"

	"github.com/moderuntime/mode/runtime/backend"
)

// TestRopeTable checks that the table RoPE reads from holds what
// ropeAngles computes for each position asked for, and that it is
// computed again when the positions, the frequencies (even changed in
// place, as the engine's long-context rescaling does) or the factor
// change.
func TestRopeTable(t *testing.T) {
	r := &backend.Rope{InvFreq: []float32{1, 0.1, 0.01, 0.001}, AttnFactor: 1}
	var tab ropeTable
	check := func(step string, pos0, n int) {
		t.Helper()
		tab.fill(pos0, n, r)
		half := len(r.InvFreq)
		wantCos, wantSin := make([]float32, half), make([]float32, half)
		for p := pos0; p < pos0+n; p++ {
			ropeAngles(wantCos, wantSin, p, r)
			cos, sin := tab.at(p)
			if !slices.Equal(cos, wantCos) || !slices.Equal(sin, wantSin) {
				t.Fatalf("%s: position %d: cos %v sin %v, want %v %v", step, p, cos, sin, wantCos, wantSin)
			}
		}
	}
	check("prefill", 0, 7)
	check("a position held", 3, 1)
	check("past the positions held", 7, 1)
	check("a batch from a later position", 5, 9)
	r.InvFreq[1] = 0.2
	check("frequencies changed in place", 6, 1)
	r.InvFreq = []float32{0.5, 0.05}
	check("fewer frequencies", 6, 2)
	r.AttnFactor = 1.25
	check("another factor", 6, 2)
}
