package cpu

import (
	"slices"
	"testing"
)

// TestKVBack checks how far store has a cache's pages backed: to the row
// written and readyAhead bytes past it, never past the layer's cache, only
// ever forward, separately for each layer's k and v, in both formats; and
// that the rows stored read back.
func TestKVBack(t *testing.T) {
	b := New(Options{})
	defer b.Close()
	const dim = 96
	for _, tc := range []struct {
		name string
		f16  bool
		seqs []int
		elem int
	}{
		{"f32", false, []int{1024, 40}, 4},
		{"f16", true, []int{2048, 7}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := b.NewRingKV(tc.seqs, dim, tc.f16)
			if err != nil {
				t.Fatal(err)
			}
			kc := c.(*kv)
			ahead := readyAhead / tc.elem
			row := make([]float32, dim)
			for i := range row {
				row[i] = float32(i) / 8 // exact in f16 too
			}
			for _, s := range []struct {
				l, slot int
				v       bool
				wantK   int
				wantV   int
			}{
				{0, 0, false, min(dim+ahead, tc.seqs[0]*dim), 0},
				{0, 1, false, min(dim+ahead, tc.seqs[0]*dim), 0}, // within what is backed: unchanged
				{0, 3, true, min(dim+ahead, tc.seqs[0]*dim), min(4*dim+ahead, tc.seqs[0]*dim)},
				{0, tc.seqs[0] - 1, false, tc.seqs[0] * dim, min(4*dim+ahead, tc.seqs[0]*dim)},
				{1, 5, true, 0, tc.seqs[1] * dim}, // a short ring: its whole cache
			} {
				kc.store(s.l, s.v, s.slot*dim, row)
				if got := kc.ready[s.l]; got != [2]int{s.wantK, s.wantV} {
					t.Errorf("layer %d after slot %d (v %v): backed %v, want [%d %d]", s.l, s.slot, s.v, got, s.wantK, s.wantV)
				}
				tmp := make([]float32, dim)
				if got := kc.row(s.l, s.v, s.slot*dim, dim, tmp); !slices.Equal(got, row) {
					t.Errorf("layer %d slot %d: read back %v", s.l, s.slot, got[:4])
				}
			}
		})
	}
}
