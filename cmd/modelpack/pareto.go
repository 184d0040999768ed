package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moderuntime/mode/modelpack/distill"
)

// cmdPareto reads distillation reports (modelpack distill's
// distill-report.json) and writes the quality-per-FLOP table as markdown
// and the plot as SVG: held-out top-1 agreement, KL and perplexity against
// FLOPs per token, the teacher at (1.0, 100%).
func cmdPareto(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("modelpack pareto", flag.ContinueOnError)
	fs.SetOutput(stderr)
	md := fs.String("md", "", "markdown table to write (default: stdout)")
	svg := fs.String("svg", "", "SVG plot to write (default: none)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "usage: modelpack pareto [-md FILE] [-svg FILE] REPORT.json...")
		fs.PrintDefaults()
		return errUsage
	}
	var pts []paretoPoint
	for _, p := range pos {
		pt, err := readParetoPoint(p)
		if err != nil {
			return err
		}
		pts = append(pts, pt)
	}
	slices.SortStableFunc(pts, func(a, b paretoPoint) int {
		if a.FLOPs != b.FLOPs {
			if a.FLOPs < b.FLOPs {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	var w io.Writer = stdout
	if *md != "" {
		f, err := os.Create(*md)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if err := writeParetoTable(w, pts); err != nil {
		return err
	}
	if *svg != "" {
		if err := os.WriteFile(*svg, []byte(paretoSVG(pts)), 0o644); err != nil {
			return fmt.Errorf("pareto: %w", err)
		}
	}
	return nil
}

// paretoPoint is one distilled student's figures.
type paretoPoint struct {
	Name                 string // the report's file name without .json
	Experts, TopK        int
	Balanced             bool
	Shared, Deep         int // Deep: experts with more than one block, summed over layers
	FLOPs                float64
	Agreement, KL        float64
	PPL, TeacherPPL      float64
	Positions, Steps     int
	Seconds, TrainSecond float64
}

func readParetoPoint(path string) (paretoPoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return paretoPoint{}, err
	}
	// The fields the table needs, as distill.Report writes them (the
	// whole Report does not read back: its refit target marshals as text).
	var r struct {
		Experts           int     `json:"experts"`
		TopK              int     `json:"top_k"`
		Balanced          bool    `json:"balanced"`
		Shared            int     `json:"shared"`
		HeldoutPositions  int     `json:"heldout_positions"`
		KL                float64 `json:"kl_teacher_student"`
		Top1Agreement     float64 `json:"top1_agreement"`
		TeacherPerplexity float64 `json:"teacher_perplexity"`
		StudentPerplexity float64 `json:"student_perplexity"`
		FLOPsRatio        float64 `json:"flops_ratio"`
		Layers            []struct {
			Experts []distill.ExpertReport `json:"experts"`
		} `json:"layers"`
		Train   *distill.TrainReport `json:"train"`
		Seconds float64              `json:"seconds"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return paretoPoint{}, fmt.Errorf("%s: not a distillation report: %w", path, err)
	}
	if r.HeldoutPositions <= 0 || !(r.FLOPsRatio > 0) || !(r.TeacherPerplexity > 0) {
		return paretoPoint{}, fmt.Errorf("%s: report without held-out positions, FLOPs ratio or teacher perplexity", path)
	}
	p := paretoPoint{
		Name: strings.TrimSuffix(filepath.Base(path), ".json"), Experts: r.Experts, TopK: r.TopK, Balanced: r.Balanced, Shared: r.Shared,
		FLOPs: r.FLOPsRatio, Agreement: r.Top1Agreement, KL: r.KL, PPL: r.StudentPerplexity, TeacherPPL: r.TeacherPerplexity,
		Positions: r.HeldoutPositions, Seconds: r.Seconds,
	}
	for _, l := range r.Layers {
		for _, e := range l.Experts {
			if len(e.BlockWidths) > 1 {
				p.Deep++
			}
		}
	}
	if r.Train != nil {
		p.Steps, p.TrainSecond = r.Train.Steps, r.Train.Seconds
	}
	return p, nil
}

// frontier marks the points no other point beats on both FLOPs (lower or
// equal) and agreement (higher).
func frontier(pts []paretoPoint) []bool {
	on := make([]bool, len(pts))
	for i, p := range pts {
		on[i] = true
		for j, q := range pts {
			if j != i && q.FLOPs <= p.FLOPs && q.Agreement > p.Agreement {
				on[i] = false
				break
			}
		}
	}
	return on
}

func writeParetoTable(w io.Writer, pts []paretoPoint) error {
	if len(pts) == 0 {
		return errors.New("pareto: no points")
	}
	on := frontier(pts)
	var b strings.Builder
	fmt.Fprintf(&b, "| # | point | experts | top-k | shared | widths | deep experts | FLOPs/teacher | top-1 agreement | KL (nats) | perplexity (teacher %.4f) | ppl ratio | held-out positions | steps | frontier |\n", pts[0].TeacherPPL)
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| T | teacher | dense | – | – | – | – | 1.000 | 100%% | 0 | %.4f | 1.000 | – | – | yes |\n", pts[0].TeacherPPL)
	for i, p := range pts {
		widths := "natural"
		if p.Balanced {
			widths = "balanced"
		}
		mark := ""
		if on[i] {
			mark = "yes"
		}
		fmt.Fprintf(&b, "| %d | %s | %d | %d | %d | %s | %d | %.3f | %.2f%% | %.4f | %.4f | %.3f | %d | %d | %s |\n",
			i+1, p.Name, p.Experts, p.TopK, p.Shared, widths, p.Deep, p.FLOPs, 100*p.Agreement, p.KL, p.PPL, p.PPL/p.TeacherPPL, p.Positions, p.Steps, mark)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// paretoSVG draws three panels — agreement, KL and perplexity ratio
// against the FLOPs ratio — with the teacher at FLOPs 1, the frontier of
// the agreement panel as a line, and the target region (FLOPs ≤
// 0.6 with agreement ≥ 90% or perplexity within 10%) shaded. Points are
// numbered as in the table; blue is natural widths, orange balanced, a
// square marks students with deeper experts.
func paretoSVG(pts []paretoPoint) string {
	const pw, ph, ml, mr, mt, mb = 300.0, 260.0, 55.0, 15.0, 30.0, 45.0
	W := 3 * (ml + pw + mr)
	H := mt + ph + mb + 44
	xmin, xmax := 1.0, 1.0
	for _, p := range pts {
		xmin, xmax = math.Min(xmin, p.FLOPs), math.Max(xmax, p.FLOPs)
	}
	xmin, xmax = math.Floor(xmin*10-0.5)/10, math.Ceil(xmax*10+0.2)/10
	type panel struct {
		title      string
		y          func(p paretoPoint) float64
		teacher    float64
		target     float64 // y bound of the target region
		above      bool    // target is y >= target
		ylo, yhi   float64
		format     string
		frontierOK bool
	}
	agree := func(p paretoPoint) float64 { return 100 * p.Agreement }
	kl := func(p paretoPoint) float64 { return p.KL }
	ppl := func(p paretoPoint) float64 { return p.PPL / p.TeacherPPL }
	panels := []panel{
		{title: "held-out top-1 agreement (%)", y: agree, teacher: 100, target: 90, above: true, format: "%.0f", frontierOK: true},
		{title: "KL(teacher‖student), nats", y: kl, teacher: 0, target: math.NaN(), format: "%.2f"},
		{title: "perplexity / teacher's", y: ppl, teacher: 1, target: 1.1, format: "%.2f"},
	}
	for i := range panels {
		pn := &panels[i]
		lo, hi := pn.teacher, pn.teacher
		for _, p := range pts {
			lo, hi = math.Min(lo, pn.y(p)), math.Max(hi, pn.y(p))
		}
		if !math.IsNaN(pn.target) {
			lo, hi = math.Min(lo, pn.target), math.Max(hi, pn.target)
		}
		pad := (hi - lo) * 0.08
		if pad == 0 {
			pad = 1
		}
		pn.ylo, pn.yhi = lo-pad, hi+pad
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="white"/>`+"\n", W, H)
	on := frontier(pts)
	for i, pn := range panels {
		ox := float64(i)*(ml+pw+mr) + ml
		X := func(x float64) float64 { return ox + (x-xmin)/(xmax-xmin)*pw }
		Y := func(y float64) float64 { return mt + ph - (y-pn.ylo)/(pn.yhi-pn.ylo)*ph }
		if !math.IsNaN(pn.target) && xmin < 0.6 {
			y0, y1 := Y(pn.target), Y(pn.ylo)
			if pn.above {
				y0, y1 = Y(pn.yhi), Y(pn.target)
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2a2" fill-opacity="0.12"/>`+"\n", X(xmin), y0, X(math.Min(0.6, xmax))-X(xmin), y1-y0)
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", ox, mt, pw, ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="12">%s</text>`+"\n", ox+pw/2, mt-10, pn.title)
		for k := 0; k <= 5; k++ {
			x := xmin + (xmax-xmin)*float64(k)/5
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="middle">%.2f</text>`+"\n",
				X(x), mt, X(x), mt+ph, X(x), mt+ph+14, x)
			y := pn.ylo + (pn.yhi-pn.ylo)*float64(k)/5
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">`+pn.format+`</text>`+"\n",
				ox, Y(y), ox+pw, Y(y), ox-4, Y(y)+4, y)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">FLOPs per token / teacher's</text>`+"\n", ox+pw/2, mt+ph+32)
		if pn.frontierOK {
			var line []string
			for j, p := range pts {
				if on[j] {
					line = append(line, fmt.Sprintf("%.1f,%.1f", X(p.FLOPs), Y(pn.y(p))))
				}
			}
			line = append(line, fmt.Sprintf("%.1f,%.1f", X(1), Y(pn.teacher)))
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#888" stroke-dasharray="4 3"/>`+"\n", strings.Join(line, " "))
		}
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="5" fill="black"/><text x="%.1f" y="%.1f" text-anchor="end">teacher</text>`+"\n",
			X(1), Y(pn.teacher), X(1)-7, Y(pn.teacher)-6)
		for j, p := range pts {
			color := "#1f77b4"
			if p.Balanced {
				color = "#ff7f0e"
			}
			x, y := X(p.FLOPs), Y(pn.y(p))
			if p.Deep > 0 {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="8" height="8" fill="%s"/>`, x-4, y-4, color)
			} else {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`, x, y, color)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10">%d</text>`+"\n", x+5, y-4, j+1)
		}
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">blue: natural widths, orange: balanced; square: deeper experts; numbers as in the table; dashed: agreement frontier</text>`+"\n", ml, H-22)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">shaded: issue 21's target (≤ 0.60 of the teacher's FLOPs with ≥ 90%% agreement, perplexity within 10%%)</text>`+"\n", ml, H-8)
	b.WriteString("</svg>\n")
	return b.String()
}
