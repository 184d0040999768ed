package shaders

import (
	"math"
	"sort"

	"github.com/moderuntime/mode/runtime/sample"
)

// SampleTwin is sample.wgsl for TopK = k: the top-k logits in rank order,
// then temperature, softmax, top-p, min-p and the draw with
// sample.Uniform(p.Seed, p.Draw), summing in f32 as the kernel does.
func SampleTwin(k int, p SampleParams, v []float32) uint32 {
	x := v[p.Off : p.Off+p.N]
	ids := make([]int, len(x))
	for i := range ids {
		ids[i] = i
	}
	sort.SliceStable(ids, func(a, b int) bool { return x[ids[a]] > x[ids[b]] })
	ids = ids[:min(k, len(ids))]
	m := x[ids[0]] / p.Temp
	type cand struct {
		e  float32
		id int
	}
	var cs []cand
	for _, id := range ids {
		if e := float32(math.Exp(float64(x[id]/p.Temp - m))); e > 0 {
			cs = append(cs, cand{e, id})
		}
	}
	sort.SliceStable(cs, func(a, b int) bool { return cs[a].e > cs[b].e || cs[a].e == cs[b].e && cs[a].id < cs[b].id })
	n := len(cs)
	if p.TopP > 0 && p.TopP < 1 {
		var sum float32
		for _, c := range cs {
			sum += c.e
		}
		var cum float32
		for j, c := range cs {
			cum += c.e
			if cum >= p.TopP*sum {
				n = j + 1
				break
			}
		}
	}
	if p.MinP > 0 {
		j := 1
		for j < n && cs[j].e >= p.MinP {
			j++
		}
		n = j
	}
	if n <= 1 {
		return uint32(cs[0].id)
	}
	var total float32
	for _, c := range cs[:n] {
		total += c.e
	}
	target := sample.Uniform(p.Seed, p.Draw) * total
	var cum float32
	for _, c := range cs[:n] {
		cum += c.e
		if cum > target {
			return uint32(c.id)
		}
	}
	return uint32(cs[n-1].id)
}
