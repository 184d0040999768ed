package ui

import "testing"

func TestBuildMap(t *testing.T) {
	l, err := ParseLayout([]byte(`{"shards":[{"kind":"core","layer":-1,"expert":-1,"sha256":"c"},
		{"kind":"expert","layer":0,"expert":0,"sha256":"a"},{"kind":"expert","layer":1,"expert":2,"sha256":"b"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if l.Layers != 2 || l.Experts != 3 {
		t.Fatalf("layout %d×%d, want 2×3", l.Layers, l.Experts)
	}
	// Without per-expert state from the engine: Cache Storage only.
	m := BuildMap(l, map[string]bool{"b": true}, Stats{ExpertsTotal: 6})
	if m.Cells[1][2] != Cached || m.Count(Cached) != 1 || m.HitRate != nil {
		t.Errorf("cache-only map %v (hit rates %v)", m.Cells, m.HitRate)
	}
	// With it: routed beats resident beats cached; out-of-range indices are ignored.
	st := Stats{ExpertMap: &EngineMap{Layers: 2, Experts: 3, Resident: [][]int{{0, 1}, {}}, LastRouted: [][]int{{1, 9}}, HitRate: []float64{0.5, -1}}}
	m = BuildMap(l, map[string]bool{"a": true}, st)
	want := [][]Cell{{Resident, Routed, NotFetched}, {NotFetched, NotFetched, NotFetched}}
	for i := range want {
		for j := range want[i] {
			if m.Cells[i][j] != want[i][j] {
				t.Errorf("cell (%d,%d) is %s, want %s", i, j, m.Cells[i][j].Name(), want[i][j].Name())
			}
		}
	}
	if HitText(m.HitRate, 0) != "50%" || HitText(m.HitRate, 1) != "–" {
		t.Errorf("hit rates %v", m.HitRate)
	}
	// A dense model has no map.
	if d := BuildMap(Layout{}, nil, Stats{}); d.Layers != 0 || d.Note == "" {
		t.Errorf("dense map %+v", d)
	}
}
