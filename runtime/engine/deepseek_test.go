package engine_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/routing"
)

// TestMLAAbsorbedEqualsExpanded runs every DeepSeek family with multi-head
// latent attention forced absorbed and forced expanded, decoding and
// prefilling: the two are the same attention computed in another order
// (kv_b_proj folded into the query and output, or applied to every cached
// latent), so the logits agree to float32 rounding.
func TestMLAAbsorbedEqualsExpanded(t *testing.T) {
	ids := []int{0, 5, 17, 42, 3, 96, 11, 64, 8, 30, 2, 71}
	for _, name := range testmodel.DeepSeekFamilies {
		for _, exact := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/exact=%v", name, exact), func(t *testing.T) {
				m := testmodel.Random(family(name, false), 11)
				run := func(mode engine.MLAMode, batch int) [][]float32 {
					e, err := engine.New(cpu.New(cpu.Options{Exact: exact}), m, engine.Options{MLA: mode, MaxBatch: batch})
					if err != nil {
						t.Fatal(err)
					}
					var out [][]float32
					for start := 0; start < len(ids); start += batch {
						got, err := e.Forward(context.Background(), ids[start:min(start+batch, len(ids))])
						if err != nil {
							t.Fatal(err)
						}
						out = append(out, append([]float32(nil), got...))
					}
					return out
				}
				for _, batch := range []int{1, 5} {
					a, x := run(engine.MLAAbsorbed, batch), run(engine.MLAExpanded, batch)
					for i := range a {
						var maxDiff, maxAbs float64
						for j := range a[i] {
							maxDiff = math.Max(maxDiff, math.Abs(float64(a[i][j]-x[i][j])))
							maxAbs = math.Max(maxAbs, math.Abs(float64(x[i][j])))
						}
						if maxDiff > 1e-5*math.Max(1, maxAbs) {
							t.Errorf("batch %d, step %d: absorbed and expanded differ by %.3g (max |logit| %.3g)", batch, i, maxDiff, maxAbs)
						}
					}
				}
			})
		}
	}
}

// TestDeepSeekGroupsLimitChoices checks that group-limited routing keeps
// every token's experts within topk_group groups, and that on these
// weights it chooses differently from plain top-k at least once, so the
// families' comparison with the reference covers the group limit.
func TestDeepSeekGroupsLimitChoices(t *testing.T) {
	ids := []int{0, 5, 17, 42, 3, 96, 11, 64, 8, 30, 2, 71, 13, 27, 55, 90}
	for _, name := range []string{"deepseek_v2", "deepseek_v3"} {
		t.Run(name, func(t *testing.T) {
			m := testmodel.Random(family(name, false), 7)
			trace := func(groups bool) map[string][]int {
				mm := *m
				mm.Config.FFN = append(mm.Config.FFN[:0:0], m.Config.FFN...)
				if !groups {
					for l := range mm.Config.FFN {
						if r := mm.Config.FFN[l].Router; r != nil {
							rr := *r
							rr.Groups, rr.TopKGroups, rr.GroupScore = 0, 0, ""
							mm.Config.FFN[l].Router = &rr
						}
					}
				}
				got := map[string][]int{}
				e, err := engine.New(cpu.New(cpu.Options{Exact: true}), &mm, engine.Options{
					Trace: func(layer, pos0 int, routes [][]routing.Choice) {
						for i, cs := range routes {
							for _, c := range cs {
								k := fmt.Sprintf("%d/%d", layer, pos0+i)
								got[k] = append(got[k], c.Expert)
							}
						}
					}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.Forward(context.Background(), ids); err != nil {
					t.Fatal(err)
				}
				return got
			}
			grouped, greedy := trace(true), trace(false)
			r := m.Config.FFN[1].Router
			size := len(m.Config.FFN[1].ExpertWidths) / r.Groups
			differ := 0
			for k, es := range grouped {
				used := map[int]bool{}
				for _, e := range es {
					used[e/size] = true
				}
				if len(used) > r.TopKGroups {
					t.Errorf("%s: experts %v span %d groups, more than topk_group %d", k, es, len(used), r.TopKGroups)
				}
				if fmt.Sprint(es) != fmt.Sprint(greedy[k]) {
					differ++
				}
			}
			if len(grouped) == 0 || differ == 0 {
				t.Errorf("%d routed (layer, token) pairs, none routed differently from plain top-k", len(grouped))
			}
		})
	}
}
