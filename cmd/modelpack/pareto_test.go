package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPareto: reports become a table sorted by FLOPs with the frontier
// marked (a point beaten on agreement by a cheaper one is not on it) and
// a well-formed SVG with one marker per point plus the teacher's per
// panel; a file that is not a report fails naming it.
func TestPareto(t *testing.T) {
	d := t.TempDir()
	write := func(name string, r map[string]any) string {
		p := filepath.Join(d, name+".json")
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	deep := []map[string]any{{"experts": []map[string]any{{"block_widths": []int{10, 8}}, {"block_widths": []int{12}}}}}
	rep := func(flops, agree float64, balanced bool, layers any) map[string]any {
		return map[string]any{"experts": 8, "top_k": 2, "balanced": balanced, "shared": 0, "heldout_positions": 25400,
			"kl_teacher_student": 1 - agree, "top1_agreement": agree, "teacher_perplexity": 3.0, "student_perplexity": 3.0 / agree,
			"flops_ratio": flops, "layers": layers, "train": map[string]any{"steps": 80}, "refit": map[string]any{"target": "local"}}
	}
	files := []string{
		write("cheap", rep(0.5, 0.80, false, nil)),
		write("beaten", rep(0.7, 0.75, true, nil)),
		write("deep", rep(0.6, 0.85, false, deep)),
	}
	md, svg := filepath.Join(d, "p.md"), filepath.Join(d, "p.svg")
	if code, out, errOut := runMP(append([]string{"pareto", "-md", md, "-svg", svg}, files...)...); code != 0 {
		t.Fatalf("pareto: exit %d\n%s%s", code, out, errOut)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "| ") && !strings.HasPrefix(l, "| #") {
			rows = append(rows, l)
		}
	}
	want := []struct{ name, frontier, deep string }{{"teacher", "yes", "–"}, {"cheap", "yes", "0"}, {"deep", "yes", "1"}, {"beaten", "", "0"}}
	if len(rows) != len(want) {
		t.Fatalf("table rows:\n%s", b)
	}
	for i, w := range want {
		cells := strings.Split(rows[i], "|")
		if strings.TrimSpace(cells[2]) != w.name || strings.TrimSpace(cells[15]) != w.frontier || strings.TrimSpace(cells[7]) != w.deep {
			t.Errorf("row %d: %q, want point %s, deep experts %s, frontier %q", i, rows[i], w.name, w.deep, w.frontier)
		}
	}
	s, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(s, new(struct{})); err != nil {
		t.Errorf("SVG is not well-formed XML: %v", err)
	}
	// Per panel: the teacher and two plain points are circles, the deep one a square.
	if c, r := strings.Count(string(s), "<circle"), strings.Count(string(s), `width="8"`); c != 3*3 || r != 3 {
		t.Errorf("SVG has %d circles and %d squares, want 9 and 3", c, r)
	}
	bad := filepath.Join(d, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"experts": 8}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runMP("pareto", bad); code == 0 || !strings.Contains(errOut, "bad.json") {
		t.Errorf("pareto on a non-report: exit %d, %q", code, errOut)
	}
}
