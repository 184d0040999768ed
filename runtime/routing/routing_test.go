package routing

import (
	"math"
	"slices"
	"testing"

	"github.com/moderuntime/mode/runtime/model"
)

func logOf(p ...float64) []float32 {
	out := make([]float32, len(p))
	for i, v := range p {
		out[i] = float32(math.Log(v))
	}
	return out
}

func TestSelectHandWorked(t *testing.T) {
	// softmax(ln[1,2,3,4]) = [0.1, 0.2, 0.3, 0.4]
	probs := logOf(1, 2, 3, 4)
	probs8 := logOf(0.1, 0.2, 0.12, 0.13, 0.25, 0.02, 0.1, 0.08)
	tests := []struct {
		name   string
		logits []float32
		bias   []float32
		r      model.Router
		want   []Choice
	}{
		{"softmax top2 renorm (Mixtral)", probs, nil, model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true},
			[]Choice{{3, 0.4 / 0.7}, {2, 0.3 / 0.7}}},
		{"softmax top2 no renorm (OLMoE, Qwen2 default)", probs, nil, model.Router{Scoring: model.Softmax, TopK: 2},
			[]Choice{{3, 0.4}, {2, 0.3}}},
		{"routed scaling 2.5", probs, nil, model.Router{Scoring: model.Softmax, TopK: 2, ScalingFactor: 2.5},
			[]Choice{{3, 1.0}, {2, 0.75}}},
		{"sigmoid top2 renorm", []float32{0, 2, -2, 1}, nil, model.Router{Scoring: model.Sigmoid, TopK: 2, NormTopK: true},
			[]Choice{{1, 0.88079708 / (0.88079708 + 0.73105858)}, {3, 0.73105858 / (0.88079708 + 0.73105858)}}},
		{"selection bias picks, unbiased score weighs", probs, []float32{0.5, 0, 0, 0},
			model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true},
			[]Choice{{0, 0.1 / 0.5}, {3, 0.4 / 0.5}}},
		{"ties go to the lower index", []float32{0, 0, 0, 0}, nil, model.Router{Scoring: model.Softmax, TopK: 2},
			[]Choice{{0, 0.25}, {1, 0.25}}},
		{"top_k = experts", probs, nil, model.Router{Scoring: model.Softmax, TopK: 4, NormTopK: true},
			[]Choice{{3, 0.4}, {2, 0.3}, {1, 0.2}, {0, 0.1}}},
		// Groups of two: {.1 .2} {.12 .13} {.25 .02} {.1 .08}; greedy top 3
		// would be 4, 1, 3.
		{"group max, 2 of 4 groups (group_limited_greedy)", probs8, nil,
			model.Router{Scoring: model.Softmax, TopK: 3, Groups: 4, TopKGroups: 2, GroupScore: model.GroupMax},
			[]Choice{{4, 0.25}, {1, 0.2}, {0, 0.1}}},
		{"group max, 1 group", probs8, nil,
			model.Router{Scoring: model.Softmax, TopK: 2, Groups: 4, TopKGroups: 1, GroupScore: model.GroupMax},
			[]Choice{{4, 0.25}, {5, 0.02}}},
		{"group top-2 sum, 1 group", probs8, nil,
			model.Router{Scoring: model.Softmax, TopK: 2, Groups: 4, TopKGroups: 1, GroupScore: model.GroupTop2Sum},
			[]Choice{{1, 0.2}, {0, 0.1}}},
		// The bias lifts group 1's top-2 sum to .45: it is chosen, and its
		// experts weigh by their unbiased scores (noaux_tc).
		{"group top-2 sum with selection bias (noaux_tc)", probs8, []float32{0, 0, 0.2, 0, 0, 0, 0, 0},
			model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true, ScalingFactor: 2.5, Groups: 4, TopKGroups: 1, GroupScore: model.GroupTop2Sum},
			[]Choice{{2, 2.5 * 0.12 / 0.25}, {3, 2.5 * 0.13 / 0.25}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Select(nil, tt.logits, tt.bias, &tt.r, make([]float32, 3*len(tt.logits)))
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].Expert != tt.want[i].Expert || math.Abs(float64(got[i].Weight-tt.want[i].Weight)) > 1e-6 {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestCapacityHandWorked(t *testing.T) {
	r := model.Router{TopK: 1, CapacityFactor: 1}
	if got := r.Capacity(4, 4); got != 1 {
		t.Errorf("capacity(1.0, 4 tokens, top1, 4 experts) = %d, want 1", got)
	}
	r = model.Router{TopK: 2, CapacityFactor: 1.25}
	if got := r.Capacity(10, 8); got != 4 { // ceil(1.25*10*2/8) = ceil(3.125)
		t.Errorf("capacity = %d, want 4", got)
	}
	if got := r.Capacity(1, 8); got != 0 {
		t.Errorf("capacity for one token (decode) = %d, want 0 (never limits)", got)
	}

	same := func() [][]Choice {
		return [][]Choice{{{0, 1}}, {{0, 0.9}}, {{0, 0.8}}, {{0, 0.7}}}
	}
	tests := []struct {
		name     string
		in       [][]Choice
		limit    int
		fallback int
		want     [][]Choice
		overflow int
	}{
		{"overflow to a routed fallback", same(), 1, 3,
			[][]Choice{{{0, 1}}, {{3, 0.9}}, {{3, 0.8}}, {{3, 0.7}}}, 3},
		{"overflow to the shared expert drops the slot", same(), 1, model.FallbackShared,
			[][]Choice{{{0, 1}}, {}, {}, {}}, 3},
		{"limit not reached", same(), 4, 3, same(), 0},
		{"first choices win over second choices", [][]Choice{{{0, .6}, {1, .4}}, {{1, .7}, {0, .3}}}, 1, 2,
			[][]Choice{{{0, .6}, {2, .4}}, {{1, .7}, {2, .3}}}, 2},
		{"overflow merges into a fallback the token already has", [][]Choice{{{0, .6}, {1, .4}}, {{1, .7}, {0, .3}}}, 1, 1,
			[][]Choice{{{0, .6}, {1, .4}}, {{1, 1.0}}}, 1},
		{"one token is never limited", [][]Choice{{{0, .5}, {1, .5}}}, 1, 2, [][]Choice{{{0, .5}, {1, .5}}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := ApplyCapacity(tt.in, tt.limit, tt.fallback, 4)
			if n != tt.overflow {
				t.Errorf("overflow = %d, want %d", n, tt.overflow)
			}
			for i := range tt.want {
				if !slices.EqualFunc(tt.in[i], tt.want[i], func(a, b Choice) bool {
					return a.Expert == b.Expert && math.Abs(float64(a.Weight-b.Weight)) < 1e-6
				}) {
					t.Errorf("token %d: got %v, want %v", i, tt.in[i], tt.want[i])
				}
			}
		})
	}
}
