package ui

import (
	"slices"
	"strings"
	"testing"
)

func TestBuildMap(t *testing.T) {
	// Routed beats resident beats stored (or fetched); out-of-range
	// indices are ignored.
	st := Stats{ExpertMap: &EngineMap{Layers: 2, Experts: 3, Cached: [][]int{{2}, {2, 7}}, Fetched: [][]int{{}, {0}},
		Resident: [][]int{{0, 1}, {}}, LastRouted: [][]int{{1, 9}}, HitRate: []float64{0.5, -1}}}
	m := BuildMap(st, nil)
	want := [][]Cell{{Resident, Routed, Cached}, {Cached, NotFetched, Cached}}
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
	if d := BuildMap(Stats{Loaded: true}, nil); d.Layers != 0 || d.Note == "" {
		t.Errorf("dense map %+v", d)
	}
	// Experts the worker does not map: counts, no map.
	if d := BuildMap(Stats{Loaded: true, ExpertsTotal: 6, ExpertsResident: 2}, nil); d.Layers != 0 || !strings.HasPrefix(d.Note, "6 experts, 2 in memory") {
		t.Errorf("unmapped experts %+v", d)
	}
}

func TestAtBottom(t *testing.T) {
	tests := []struct {
		name string
		s    Scroll
		want bool
	}{
		{"content shorter than the view", Scroll{Top: 0, Height: 300, Client: 500}, true},
		{"at the end", Scroll{Top: 700, Height: 1200, Client: 500}, true},
		{"a fraction of a pixel short (zoom)", Scroll{Top: 699.4, Height: 1200, Client: 500}, true},
		{"just inside the slack", Scroll{Top: 700 - followSlack, Height: 1200, Client: 500}, true},
		{"scrolled up a little past the slack", Scroll{Top: 700 - followSlack - 1, Height: 1200, Client: 500}, false},
		{"scrolled up to the top", Scroll{Top: 0, Height: 1200, Client: 500}, false},
	}
	for _, tt := range tests {
		if got := tt.s.AtBottom(); got != tt.want {
			t.Errorf("%s: %+v.AtBottom() = %t, want %t", tt.name, tt.s, got, tt.want)
		}
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijkl", 10, "abcdefg…"},
		// "é" is two bytes: the cut backs off to a character boundary.
		{"ééééé", 8, "éé…"},
	}
	for _, tt := range tests {
		got := clip(tt.s, tt.n)
		if got != tt.want || len(got) > tt.n {
			t.Errorf("clip(%q, %d) = %q, want %q (at most %d bytes)", tt.s, tt.n, got, tt.want, tt.n)
		}
	}
}

func TestTextKey(t *testing.T) {
	a := textKey("hello")
	for _, other := range []string{"hellp", "hello ", "", "olleh"} {
		if textKey(other) == a {
			t.Errorf("textKey(%q) equals textKey(%q)", other, "hello")
		}
	}
	if textKey("hello") != a {
		t.Error("textKey is not stable")
	}
}

func TestHistoryAndMarkContext(t *testing.T) {
	ms := []Message{
		{Role: "user", Content: "one"},
		{Role: "assistant", Content: "", Error: "failed"}, // not sent
		{Role: "user", Content: "two"},
		{Role: "assistant", Content: "reply two"},
		{Role: "user", Content: "  "}, // not sent
		{Role: "user", Content: "three"},
	}
	sent, at := history(ms)
	if want := []int{0, 2, 3, 5}; !slices.Equal(at, want) || len(sent) != len(want) {
		t.Fatalf("history sent %d messages at %v, want %v", len(sent), at, want)
	}
	tests := []struct {
		name    string
		before  []int // indices already out of context
		dropped int
		want    []int
	}{
		{"nothing dropped", nil, 0, nil},
		{"the oldest two", nil, 2, []int{0, 2}},
		{"all but the last", nil, 3, []int{0, 2, 3}},
		{"a later request that fits again clears the marks", []int{0, 2}, 1, []int{0}},
	}
	for _, tt := range tests {
		m := slices.Clone(ms)
		for _, i := range tt.before {
			m[i].OutOfContext = true
		}
		markContext(m, at, tt.dropped)
		var got []int
		for i := range m {
			if m[i].OutOfContext {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: out of context %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNote(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{"plain", Message{Finish: "stop"}, ""},
		{"stopped", Message{Finish: "abort"}, "Stopped."},
		{"cut", Message{Finish: "length"}, "Cut at max tokens."},
		{"the session's note, as sentences",
			Message{Finish: "stop", Dropped: 2, Note: "the conversation passed the context of 512 tokens: its 2 oldest messages were left out; max_tokens 400 was clamped to the 120 tokens left in the context"},
			"The conversation passed the context of 512 tokens: its 2 oldest messages were left out. Max tokens 400 was clamped to the 120 tokens left in the context."},
		{"clamped and cut",
			Message{Finish: "length", Note: "max_tokens 1000 was clamped to the 500 tokens left in the context"},
			"Cut at max tokens. Max tokens 1000 was clamped to the 500 tokens left in the context."},
		{"dropped without a note", Message{Dropped: 1}, "The model did not see the 1 oldest message: the conversation is longer than its context."},
		{"an error has its own line", Message{Error: "boom"}, ""},
	}
	for _, tt := range tests {
		if got := Note(tt.m); got != tt.want {
			t.Errorf("%s: Note = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestStartup(t *testing.T) {
	em := &EngineMap{Fetched: [][]int{{0, 3}, {1}}}
	tests := []struct {
		name    string
		s       Startup
		visible bool
		text    string
	}{
		{"idle", Startup{}, false, ""},
		{"manifest", Startup{Stage: StageManifest}, true, "Reading the manifest…"},
		{"the core is coming: the total is known before any shard",
			Startup{Stage: StageWeights, Load: Progress{Phase: "weights", Total: 300 << 10, ShardsTotal: 7, ETASeconds: -1}}, true,
			"Downloading the model (core and layers): 0 B of 300.0 kB, 0 of 7 files"},
		{"with an estimate and the cache",
			Startup{Stage: StageWeights, Load: Progress{Phase: "weights", Bytes: 100 << 10, Total: 300 << 10, Shards: 2, ShardsTotal: 7, FromCache: 1, ETASeconds: 12}}, true,
			"Downloading the model (core and layers): 100.0 kB of 300.0 kB, 2 of 7 files, 1 from this browser's cache, about 12 s left"},
		{"loaded, nothing asked", Startup{Stage: StageLoaded}, false, ""},
		{"experts of the first answer",
			Startup{Stage: StageExperts, AtReady: Stats{BytesFetched: 1000}, Stats: Stats{BytesFetched: 1000 + 3<<20, ExpertMap: em}, ExpertBytes: 40 << 20}, true,
			"Fetching the experts the first tokens route to: 3 experts, 3.0 MB (of 40.0 MB for all of them; only those used are fetched)…"},
		{"experts, none yet",
			Startup{Stage: StageExperts}, true,
			"Fetching the experts the first tokens route to: 0 experts…"},
	}
	for _, tt := range tests {
		if v := tt.s.Visible(); v != tt.visible {
			t.Errorf("%s: Visible() = %t, want %t", tt.name, v, tt.visible)
		}
		if tt.visible {
			if got := tt.s.Text(); got != tt.text {
				t.Errorf("%s: Text() =\n %q, want\n %q", tt.name, got, tt.text)
			}
		}
	}
}

func TestRouteWindow(t *testing.T) {
	w := RouteWindow{Size: 3}
	for _, s := range [][][]int{
		{{0, 1}, {2}},
		{{0, 1}, {2}}, // the same token sampled again: not counted twice
		{{0}, {3}},
		nil, // no routes reported: ignored
		{{1}, {3}},
		{{0}, {3}}, // the first sample drops out
	} {
		w.Add(s)
	}
	if w.Len() != 3 {
		t.Fatalf("%d samples, want 3", w.Len())
	}
	got := w.heat(2, 4)
	want := [][]int{{2, 1, 0, 0}, {0, 0, 0, 3}}
	for l := range want {
		if !slices.Equal(got[l], want[l]) {
			t.Errorf("heat of layer %d: %v, want %v", l, got[l], want[l])
		}
	}
	tests := []struct {
		n, window int
		want      string
	}{{0, 8, ""}, {1, 8, " heat1"}, {3, 8, " heat2"}, {5, 8, " heat3"}, {8, 8, " heat3"}, {1, 0, ""}}
	for _, tt := range tests {
		if got := heatClass(tt.n, tt.window); got != tt.want {
			t.Errorf("heatClass(%d, %d) = %q, want %q", tt.n, tt.window, got, tt.want)
		}
	}
}

func TestMapNotes(t *testing.T) {
	if n := BuildMap(Stats{}, nil).Note; !strings.HasPrefix(n, "No model loaded yet") {
		t.Errorf("before any model: %q", n)
	}
	if n := BuildMap(Stats{Loaded: true}, nil).Note; !strings.HasPrefix(n, "A dense model") {
		t.Errorf("a dense model: %q", n)
	}
	w := &RouteWindow{Size: 4}
	w.Add([][]int{{1}})
	w.Add([][]int{{0}})
	m := BuildMap(Stats{Loaded: true, ExpertMap: &EngineMap{Layers: 1, Experts: 2, LastRouted: [][]int{{0}}}}, w)
	if strings.Contains(m.Note, "dense") || m.Window != 2 {
		t.Errorf("a mixture of experts: %q, window %d", m.Note, m.Window)
	}
	if got := m.CellTitle(0, 1); !strings.Contains(got, "routed for 1 of the last 2 tokens sampled") || !strings.Contains(got, "not downloaded") {
		t.Errorf("cell title %q", got)
	}
}
