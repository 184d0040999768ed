package gptq

import (
	"context"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/model"
)

// TestCollect: for every model family, calibration records every matrix
// the forward pass multiplies, with the right input width and row count:
// attention, heads and routers see every token, a shared (or dense) FFN
// every token, and each layer's routed experts top_k rows per token
// between them; every H is symmetric with a positive trace.
func TestCollect(t *testing.T) {
	seqs := [][]int{{1, 5, 9, 13, 2, 7}, {3, 3, 8, 40, 96}}
	tokens := 11
	for _, fam := range testmodel.Families {
		t.Run(fam, func(t *testing.T) {
			m := testmodel.Random(testmodel.Family(fam, false), 1)
			c := &m.Config
			st, err := Collect(context.Background(), m, seqs, 1)
			if err != nil {
				t.Fatal(err)
			}
			check := func(name string, n, rows int) {
				t.Helper()
				h := st.Get(name)
				if h == nil {
					t.Fatalf("%s: no statistics", name)
				}
				if h.N != n || (rows >= 0 && h.Rows != rows) {
					t.Fatalf("%s: N %d rows %d, want N %d rows %d", name, h.N, h.Rows, n, rows)
				}
				var tr float64
				for i := range n {
					tr += h.Sum[i*n+i]
					for j := range i {
						if h.Sum[i*n+j] != h.Sum[j*n+i] {
							t.Fatalf("%s: H not symmetric at (%d, %d)", name, i, j)
						}
					}
				}
				if !(tr > 0) {
					t.Fatalf("%s: trace %v", name, tr)
				}
			}
			head := model.NameOutput
			if c.TiedOutput {
				head = model.NameEmbed
			}
			check(head, c.Dim, tokens)
			q := c.Heads * c.HeadDim
			for l := range c.Layers {
				for _, w := range []string{"wq", "wk", "wv"} {
					check(model.LayerName(l, w), c.Dim, tokens)
				}
				check(model.LayerName(l, "wo"), q, tokens)
				f := &c.FFN[l]
				for s, width := range f.SharedWidths {
					check(model.SharedName(l, s, "gate"), c.Dim, tokens)
					check(model.SharedName(l, s, "up"), c.Dim, tokens)
					check(model.SharedName(l, s, "down"), width, tokens)
				}
				if !f.Sparse() {
					continue
				}
				check(model.LayerName(l, "router"), c.Dim, tokens)
				routed := 0
				for x, width := range f.ExpertWidths {
					h := st.Get(model.ExpertName(l, x, "gate"))
					if h == nil {
						continue // no token chose it
					}
					routed += h.Rows
					check(model.ExpertName(l, x, "up"), c.Dim, h.Rows)
					check(model.ExpertName(l, x, "down"), width, h.Rows)
				}
				if routed != tokens*f.Router.TopK {
					t.Errorf("layer %d: routed experts saw %d rows, want %d tokens × top_k %d", l, routed, tokens, f.Router.TopK)
				}
			}
			for _, n := range st.Names() {
				if strings.Contains(n, "norm") {
					t.Errorf("statistics for a vector %s", n)
				}
			}
		})
	}
}

// TestCollectErrors: bad calibration input is an error, not a panic.
func TestCollectErrors(t *testing.T) {
	m := testmodel.Random(testmodel.Family("llama", false), 1)
	for _, tc := range []struct {
		name string
		seqs [][]int
		want string
	}{
		{"empty", nil, "no calibration tokens"},
		{"out of vocabulary", [][]int{{1, 97}}, "outside the vocabulary"},
		{"negative", [][]int{{-1}}, "outside the vocabulary"},
		{"too long", [][]int{make([]int, m.Config.MaxSeq+1)}, "longer than the model's context"},
	} {
		_, err := Collect(context.Background(), m, tc.seqs, 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
