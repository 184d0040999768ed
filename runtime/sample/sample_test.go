package sample

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var (
	inf = float32(math.Inf(1))
	nan = float32(math.NaN())
)

func mustNew(t testing.TB, p Params) *Sampler {
	t.Helper()
	s, err := New(p)
	if err != nil {
		t.Fatalf("New(%+v): %v", p, err)
	}
	return s
}

// logitsOf returns log(p) for each p, so that softmax at temperature 1
// reproduces p (0 becomes -Inf).
func logitsOf(p ...float64) []float32 {
	l := make([]float32, len(p))
	for i, v := range p {
		l[i] = float32(math.Log(v))
	}
	return l
}

// randLogits returns n normal logits times scale; with quant > 0 they are
// rounded to multiples of quant to create ties.
func randLogits(r *rand.Rand, n int, scale, quant float64) []float32 {
	l := make([]float32, n)
	for i := range l {
		v := r.NormFloat64() * scale
		if quant > 0 {
			v = math.Round(v/quant) * quant
		}
		l[i] = float32(v)
	}
	return l
}

func TestArgmax(t *testing.T) {
	tests := []struct {
		logits []float32
		want   int
	}{
		{nil, -1},
		{[]float32{5}, 0},
		{[]float32{1, 3, 2}, 1},
		{[]float32{1, 3, 3, 2}, 1},
		{[]float32{4, 3, 4}, 0},
		{[]float32{-1, -0.5, -2}, 1},
		{[]float32{nan, 1, 2}, 2},
		{[]float32{nan, nan}, 0},
		{[]float32{-inf, -inf, -inf}, 0},
		{[]float32{-inf, nan, -1}, 2},
		{[]float32{1, inf, inf}, 1},
	}
	for _, tt := range tests {
		if got := Argmax(tt.logits); got != tt.want {
			t.Errorf("Argmax(%v) = %d, want %d", tt.logits, got, tt.want)
		}
	}
}

func TestGreedy(t *testing.T) {
	tests := []struct {
		name    string
		p       Params
		logits  []float32
		history []int
		want    int
	}{
		{"max", Params{}, []float32{0.1, 2.5, -1, 0.3}, nil, 1},
		{"tie lowest id", Params{}, []float32{0.1, 2.5, -1, 2.5}, nil, 1},
		{"NaN ignored", Params{}, []float32{nan, -3, -2}, nil, 2},
		{"all -Inf", Params{}, []float32{-inf, -inf}, nil, 0},
		// Penalty 2 halves logit 0 from 3 to 1.5, so id 1 (2.5) wins.
		{"penalty flips", Params{RepetitionPenalty: 2}, []float32{3, 2.5}, []int{0}, 1},
		// Seed and truncation settings do not matter for greedy.
		{"seed ignored", Params{Seed: 99, TopK: 3, TopP: 0.5}, []float32{1, 2, 3, 2}, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, tt.p)
			for range 3 {
				if got := s.Sample(tt.logits, tt.history); got != tt.want {
					t.Fatalf("Sample = %d, want %d", got, tt.want)
				}
			}
		})
	}
}

// TestTemperatureLimit checks that sampling with a small temperature
// behaves like argmax for every seed. Only logits without a tie at the
// maximum qualify: tied maxima stay equally likely at any temperature.
func TestTemperatureLimit(t *testing.T) {
	logits := []float32{1, 3, 2.5, -1, 2.9}
	tests := []float32{
		1e-2,  // others' weights ~exp(-10): far below the 2^-24 resolution of u
		1e-4,  // others' weights underflow to 0
		1e-38, // logits/T overflow to +Inf: the infinite-max path
		math.SmallestNonzeroFloat32,
	}
	for _, temp := range tests {
		for seed := range uint64(200) {
			s := mustNew(t, Params{Temperature: temp, Seed: seed})
			if got := s.Sample(logits, nil); got != 1 {
				t.Fatalf("T=%g seed=%d: Sample = %d, want 1", temp, seed, got)
			}
		}
	}
}

func TestTopKOneIsGreedy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{2, 7, 1000} {
		for seed := range uint64(50) {
			// Coarse quantisation makes ties at the maximum common.
			logits := randLogits(r, n, 2, 0.5)
			want := Argmax(logits)
			for _, temp := range []float32{0.5, 1, 3} {
				s := mustNew(t, Params{Temperature: temp, TopK: 1, Seed: seed})
				if got := s.Sample(logits, nil); got != want {
					t.Fatalf("n=%d seed=%d T=%g: Sample = %d, want argmax %d", n, seed, temp, got, want)
				}
			}
		}
	}
}

func TestTinyTopPIsGreedy(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := [][]float32{
		// All equal: the llama2.c floor (1-p)/(n-1) exceeds every
		// probability, so this exercises the fallback without the floor.
		make([]float32, 100),
		{0, 1, 1, 0.5},
	}
	for range 20 {
		cases = append(cases, randLogits(r, 1000, 2, 0.5))
	}
	for i, logits := range cases {
		want := Argmax(logits)
		for _, topK := range []int{0, 50} {
			for seed := range uint64(20) {
				s := mustNew(t, Params{Temperature: 1, TopP: 1e-6, TopK: topK, Seed: seed})
				if got := s.Sample(logits, nil); got != want {
					t.Fatalf("case %d topK=%d seed=%d: Sample = %d, want argmax %d", i, topK, seed, got, want)
				}
			}
		}
	}
}

// TestTruncate checks kept sets worked out by hand. Logits are log
// probabilities, so at temperature 1 the softmax gives back p.
func TestTruncate(t *testing.T) {
	// p = [0.05, 0.5, 0.15, 0.3]; descending order is ids 1, 3, 2, 0.
	p4 := logitsOf(0.05, 0.5, 0.15, 0.3)
	tests := []struct {
		name   string
		p      Params
		logits []float32
		want   []int32
	}{
		{"none", Params{}, p4, []int32{1, 3, 2, 0}},
		// min-p 0.2: keep p >= 0.2*0.5 = 0.1, dropping 0.05.
		{"min-p 0.2", Params{MinP: 0.2}, p4, []int32{1, 3, 2}},
		// min-p 0.5: keep p >= 0.25, i.e. 0.5 and 0.3.
		{"min-p 0.5", Params{MinP: 0.5}, p4, []int32{1, 3}},
		// min-p 0.7: keep p >= 0.35, only the top token.
		{"min-p 0.7", Params{MinP: 0.7}, p4, []int32{1}},
		{"min-p 1", Params{MinP: 1}, p4, []int32{1}},
		// top-p 0.45: 0.5 alone reaches it.
		{"top-p 0.45", Params{TopP: 0.45}, p4, []int32{1}},
		// top-p 0.7: 0.5+0.3 = 0.8 >= 0.7.
		{"top-p 0.7", Params{TopP: 0.7}, p4, []int32{1, 3}},
		// top-p 0.9: 0.5+0.3+0.15 = 0.95 >= 0.9.
		{"top-p 0.9", Params{TopP: 0.9}, p4, []int32{1, 3, 2}},
		{"top-k 2", Params{TopK: 2}, p4, []int32{1, 3}},
		{"top-k 3", Params{TopK: 3}, p4, []int32{1, 3, 2}},
		{"top-k 4 is off", Params{TopK: 4}, p4, []int32{1, 3, 2, 0}},
		{"top-k 9 is off", Params{TopK: 9}, p4, []int32{1, 3, 2, 0}},
		// top-k 3 then top-p 0.7 of the renormalised [0.5,0.3,0.15]/0.95:
		// 0.5/0.95 = 0.526 < 0.7 <= 0.8/0.95 = 0.842.
		{"top-k 3 top-p 0.7", Params{TopK: 3, TopP: 0.7}, p4, []int32{1, 3}},
		// top-k 3 then min-p 0.2 drops nothing (0.05 is already gone).
		{"top-k 3 min-p 0.2", Params{TopK: 3, MinP: 0.2}, p4, []int32{1, 3, 2}},
		{"top-k 3 min-p 0.5", Params{TopK: 3, MinP: 0.5}, p4, []int32{1, 3}},
		// top-p 0.9 keeps {1,3,2}; min-p 0.5 then drops 0.15 < 0.25.
		{"top-p 0.9 min-p 0.5", Params{TopP: 0.9, MinP: 0.5}, p4, []int32{1, 3}},
		// Ties sort by lower id; zero-probability tokens are never kept.
		{"ties", Params{}, []float32{1, 2, -inf, 2, 1}, []int32{1, 3, 0, 4}},
		{"ties top-k", Params{TopK: 3}, []float32{1, 2, -inf, 2, 1}, []int32{1, 3, 0}},
		{"top-k beyond finite", Params{TopK: 3}, []float32{-inf, 2, -inf, -inf}, []int32{1}},
		{"+Inf", Params{}, []float32{1, inf, 3, inf}, []int32{1}},
		{"+Inf top-k", Params{TopK: 2}, []float32{1, inf, 3, inf}, []int32{1}},
		{"all -Inf", Params{TopP: 0.5}, []float32{-inf, -inf, -inf}, []int32{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.Temperature = 1
			s := mustNew(t, tt.p)
			var got []int32
			for _, k := range s.truncate(s.prepare(tt.logits, nil)) {
				got = append(got, int32(keyID(k)))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("kept %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRepetitionPenalty(t *testing.T) {
	logits := []float32{2, -2, 1, 0, 3, nan}
	tests := []struct {
		name    string
		pen     float32
		window  int
		history []int
		want    []float32
	}{
		// Each distinct id once: id 0 appears twice but is divided once.
		// 9 and -1 are out of range and ignored; NaN becomes -Inf.
		{"all", 2, 0, []int{0, 1, 0, 3, 9, -1}, []float32{1, -4, 1, 0, 3, -inf}},
		{"three times", 2, 0, []int{4, 4, 4}, []float32{2, -2, 1, 0, 1.5, -inf}},
		// Window 2 sees only the last two ids, 1 and 4.
		{"window", 2, 2, []int{0, 1, 4}, []float32{2, -4, 1, 0, 1.5, -inf}},
		{"window longer than history", 2, 10, []int{0}, []float32{1, -2, 1, 0, 3, -inf}},
		// A penalty below 1 rewards repeats.
		{"reward", 0.5, 0, []int{0, 1, 0}, []float32{4, -1, 1, 0, 3, -inf}},
		{"off 1", 1, 0, []int{0, 1}, []float32{2, -2, 1, 0, 3, -inf}},
		{"off 0", 0, 0, []int{0, 1}, []float32{2, -2, 1, 0, 3, -inf}},
		{"penalised NaN", 2, 0, []int{5}, []float32{2, -2, 1, 0, 3, -inf}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(logits)
			s := mustNew(t, Params{RepetitionPenalty: tt.pen, RepeatWindow: tt.window})
			got := s.prepare(in, tt.history)
			if !slices.Equal(got, tt.want) {
				t.Errorf("penalised = %v, want %v", got, tt.want)
			}
			if !slices.EqualFunc(in, logits, sameFloat) {
				t.Errorf("input modified: %v", in)
			}
		})
	}
}

func sameFloat(a, b float32) bool { return a == b || a != a && b != b }

func TestSampleDoesNotModifyInput(t *testing.T) {
	logits := []float32{2, -2, 1, nan, 3}
	in := slices.Clone(logits)
	s := mustNew(t, Params{Temperature: 0.7, TopK: 3, TopP: 0.9, RepetitionPenalty: 1.3})
	s.Sample(in, []int{0, 1, 4})
	if !slices.EqualFunc(in, logits, sameFloat) {
		t.Errorf("Sample modified logits: %v, want %v", in, logits)
	}
}

// binomialCheck returns an error unless every count lies within sigmas
// binomial standard deviations of draws*want[i]. Tokens with probability 0
// must never be drawn.
func binomialCheck(counts []int, want []float64, draws int, sigmas float64) error {
	for i, c := range counts {
		mean := float64(draws) * want[i]
		sd := math.Sqrt(float64(draws) * want[i] * (1 - want[i]))
		if math.Abs(float64(c)-mean) > sigmas*sd {
			return fmt.Errorf("token %d drawn %d times, want %.1f ± %.1f (%g sigma)", i, c, mean, sigmas*sd, sigmas)
		}
	}
	return nil
}

func TestDistribution(t *testing.T) {
	const draws = 20000
	base := logitsOf(0.1, 0.2, 0.3, 0.4)
	sq := []float64{math.Sqrt(0.1), math.Sqrt(0.2), math.Sqrt(0.3), math.Sqrt(0.4)}
	sqSum := sq[0] + sq[1] + sq[2] + sq[3]
	tests := []struct {
		name string
		p    Params
		want []float64
	}{
		{"plain", Params{Temperature: 1}, []float64{0.1, 0.2, 0.3, 0.4}},
		// Temperature 2 halves log p: p' ∝ sqrt(p).
		{"temperature 2", Params{Temperature: 2}, []float64{sq[0] / sqSum, sq[1] / sqSum, sq[2] / sqSum, sq[3] / sqSum}},
		{"top-k 2", Params{Temperature: 1, TopK: 2}, []float64{0, 0, 3.0 / 7, 4.0 / 7}},
		// 0.4+0.3+0.2 = 0.9 >= 0.75 while 0.7 < 0.75.
		{"top-p 0.75", Params{Temperature: 1, TopP: 0.75}, []float64{0, 2.0 / 9, 3.0 / 9, 4.0 / 9}},
		// Keep p >= 0.6*0.4 = 0.24.
		{"min-p 0.6", Params{Temperature: 1, MinP: 0.6}, []float64{0, 0, 3.0 / 7, 4.0 / 7}},
		{"top-k 3 top-p 0.6", Params{Temperature: 1, TopK: 3, TopP: 0.6}, []float64{0, 0, 3.0 / 7, 4.0 / 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.Seed = 12345
			s := mustNew(t, tt.p)
			counts := make([]int, len(base))
			for range draws {
				counts[s.Sample(base, nil)]++
			}
			if err := binomialCheck(counts, tt.want, draws, 5); err != nil {
				t.Errorf("counts %v: %v", counts, err)
			}
			// The check must have power: the same counts measured against
			// the reversed distribution must fail.
			rev := slices.Clone(tt.want)
			slices.Reverse(rev)
			if err := binomialCheck(counts, rev, draws, 5); err == nil {
				t.Errorf("counts %v also pass against reversed %v: check has no power", counts, rev)
			}
		})
	}
}

func TestReproducible(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	inputs := make([][]float32, 200)
	for i := range inputs {
		inputs[i] = randLogits(r, 50, 1, 0)
	}
	run := func(s *Sampler) []int {
		var ids []int
		for _, l := range inputs {
			ids = append(ids, s.Sample(l, ids))
		}
		return ids
	}
	p := Params{Temperature: 1, TopK: 40, TopP: 0.95, RepetitionPenalty: 1.1, RepeatWindow: 16, Seed: 7}
	a, b := mustNew(t, p), mustNew(t, p)
	first := run(a)
	if got := run(b); !slices.Equal(got, first) {
		t.Errorf("equal seeds gave different ids:\n%v\n%v", first, got)
	}
	a.Reset()
	if got := run(a); !slices.Equal(got, first) {
		t.Errorf("after Reset ids differ:\n%v\n%v", first, got)
	}
	if got := run(a); slices.Equal(got, first) {
		t.Errorf("without Reset the stream repeated")
	}
	p.Seed = 8
	if got := run(mustNew(t, p)); slices.Equal(got, first) {
		t.Errorf("seeds 7 and 8 gave the same %d ids", len(got))
	}
	p.Seed = 7 | 1<<32 // differs only in the high word
	if got := run(mustNew(t, p)); slices.Equal(got, first) {
		t.Errorf("seeds differing in the high word gave the same ids")
	}
}

// TestCounterCountsDraws checks that every call with Temperature > 0
// consumes exactly one draw, even when the outcome is forced.
func TestCounterCountsDraws(t *testing.T) {
	s := mustNew(t, Params{Temperature: 1, Seed: 3})
	logits := []float32{0, 0, 0, 0, 0, 0, 0, 0}
	s.Sample(logits, nil)
	s.Sample([]float32{inf, 0}, nil) // forced result still consumes a draw
	if s.draws != 2 {
		t.Errorf("draws = %d after 2 calls, want 2", s.draws)
	}
	// With uniform weights the draw is the id floor(u*8), so the third call
	// must use Uniform(3, 2).
	want := int(Uniform(3, 2) * 8)
	if got := s.Sample(logits, nil); got != want {
		t.Errorf("third draw = %d, want %d from Uniform(3, 2)", got, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		p    Params
		want []string // substrings of the error; nil means valid
	}{
		{Params{}, nil},
		{Params{Temperature: 0.7, TopK: 40, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.1, RepeatWindow: 64, Seed: 1}, nil},
		{Params{TopP: 1, MinP: 1}, nil},
		{Params{Temperature: -0.1}, []string{"Temperature"}},
		{Params{Temperature: nan}, []string{"Temperature"}},
		{Params{Temperature: inf}, []string{"Temperature"}},
		{Params{TopK: -1}, []string{"TopK"}},
		{Params{TopP: -0.1}, []string{"TopP"}},
		{Params{TopP: 1.5}, []string{"TopP"}},
		{Params{TopP: nan}, []string{"TopP"}},
		{Params{MinP: -0.1}, []string{"MinP"}},
		{Params{MinP: 1.01}, []string{"MinP"}},
		{Params{MinP: nan}, []string{"MinP"}},
		{Params{RepetitionPenalty: -1}, []string{"RepetitionPenalty"}},
		{Params{RepetitionPenalty: nan}, []string{"RepetitionPenalty"}},
		{Params{RepeatWindow: -1}, []string{"RepeatWindow"}},
		{Params{Temperature: -1, TopP: 2}, []string{"Temperature", "TopP"}},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if tt.want == nil {
			if err != nil {
				t.Errorf("%+v: Validate = %v, want nil", tt.p, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%+v: Validate = nil, want error naming %v", tt.p, tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: Validate = %q, want it to name %s", tt.p, err, w)
			}
		}
		if s, err2 := New(tt.p); s != nil || err2 == nil {
			t.Errorf("%+v: New accepted invalid params", tt.p)
		}
	}
}

// refHash is PCG-RXS-M-XS written independently of pcgHash: in 64-bit
// arithmetic with explicit reduction modulo 2^32.
func refHash(v uint32) uint32 {
	const mask = 1<<32 - 1
	state := (uint64(v)*747796405 + 2891336453) & mask
	word := (((state >> ((state >> 28) + 4)) ^ state) * 277803737) & mask
	return uint32((word >> 22) ^ word)
}

func TestUniform(t *testing.T) {
	// Values computed outside Go from the hash definition.
	known := []struct {
		seed uint64
		n    uint32
		h    uint32 // the full hash
		want float32
	}{
		{0, 0, 0x75ca8a03, 7719562.0 / 16777216},
		{0, 1, 0xb99a5318, 12163667.0 / 16777216},
		{42, 7, 0xf3c6cc5e, 15976140.0 / 16777216},
		{0x123456789abcdef0, 3, 0xbb7fe44d, 12287972.0 / 16777216},
		{math.MaxUint64, math.MaxUint32, 0x76a8076f, 7776263.0 / 16777216},
	}
	for _, k := range known {
		key := refHash(refHash(uint32(k.seed)) ^ uint32(k.seed>>32))
		if h := refHash(refHash(k.n^key) ^ key); h != k.h {
			t.Errorf("refHash chain(%#x, %d) = %#x, want %#x", k.seed, k.n, h, k.h)
		}
		if got := Uniform(k.seed, k.n); got != k.want {
			t.Errorf("Uniform(%#x, %d) = %v, want %v", k.seed, k.n, got, k.want)
		}
	}
	if got, want := pcgHash(0), uint32(0x07bb2fe2); got != want {
		t.Errorf("pcgHash(0) = %#x, want %#x", got, want)
	}
	r := rand.New(rand.NewPCG(9, 10))
	for range 10000 {
		v := r.Uint32()
		if got, want := pcgHash(v), refHash(v); got != want {
			t.Fatalf("pcgHash(%#x) = %#x, refHash = %#x", v, got, want)
		}
		seed, n := r.Uint64(), r.Uint32()
		u := Uniform(seed, n)
		if u < 0 || u >= 1 {
			t.Fatalf("Uniform(%#x, %d) = %v, outside [0, 1)", seed, n, u)
		}
	}
}

// TestNearbySeedsIndependent: streams of seeds that differ in a few bits
// are not the same numbers in another order. When the seed was only XORed
// into the counter, seeds s and s^1 drew the same multiset in their first
// 128 draws, and 200 sequences sampled with seeds base+i shared their
// randomness in two or three blocks (their perplexity then varied by 25%
// from one base seed to the next). Also: the mean of the first 128 draws
// of 512 consecutive seeds spreads as independent means do.
func TestNearbySeedsIndependent(t *testing.T) {
	draws := func(seed uint64) []float32 {
		u := make([]float32, 128)
		for n := range u {
			u[n] = Uniform(seed, uint32(n))
		}
		return u
	}
	for _, base := range []uint64{0, 1000003, 7000021, 1 << 40} {
		for _, bit := range []uint64{1, 2, 64, 1 << 32} {
			a, b := draws(base), draws(base^bit)
			slices.Sort(a)
			slices.Sort(b)
			if slices.Equal(a, b) {
				t.Errorf("seeds %#x and %#x draw the same 128 numbers", base, base^bit)
			}
		}
	}
	// Each mean of 128 uniforms has standard deviation sqrt(1/12/128) ≈ 0.0255.
	var sum, sq float64
	const seeds = 512
	for s := range uint64(seeds) {
		var m float64
		for _, u := range draws(1000003 + s) {
			m += float64(u) / 128
		}
		sum += m
		sq += m * m
	}
	mean := sum / seeds
	sd := math.Sqrt(sq/seeds - mean*mean)
	if math.Abs(mean-0.5) > 0.005 || sd < 0.02 || sd > 0.031 {
		t.Errorf("means of 128 draws over %d nearby seeds: mean %.4f, sd %.4f; want 0.5 and about 0.0255", seeds, mean, sd)
	}
}

// reference is a literal, unoptimised reading of the sampling rules: a set
// of seen ids for the penalty, a full sort, and each step applied in turn.
// It shares only arithmetic conventions with Sampler (float32 logits,
// float32 weights exp(x-max), float64 sums; the softmax normaliser summed
// in id order without top-k and in probability order with it), so that a
// correct Sampler matches it exactly.
func reference(p Params, logits []float32, history []int, u float32) int {
	x := make([]float32, len(logits))
	for i, v := range logits {
		if math.IsNaN(float64(v)) {
			v = float32(math.Inf(-1))
		}
		x[i] = v
	}
	if p.RepetitionPenalty != 0 && p.RepetitionPenalty != 1 {
		w := history
		if p.RepeatWindow > 0 && p.RepeatWindow < len(w) {
			w = w[len(w)-p.RepeatWindow:]
		}
		seen := map[int]bool{}
		for _, id := range w {
			if id < 0 || id >= len(x) || seen[id] {
				continue
			}
			seen[id] = true
			if x[id] > 0 {
				x[id] /= p.RepetitionPenalty
			} else {
				x[id] *= p.RepetitionPenalty
			}
		}
	}
	byValue := func(v []float32) func(a, b int) int {
		return func(a, b int) int {
			if c := cmp.Compare(v[b], v[a]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		}
	}
	order := make([]int, len(x))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, byValue(x))
	if p.Temperature == 0 {
		return order[0]
	}
	argmax := order[0]
	for i := range x {
		x[i] /= p.Temperature
	}
	if math.IsInf(float64(x[argmax]), 0) {
		return argmax
	}
	slices.SortFunc(order, byValue(x))
	topK := p.TopK > 0 && p.TopK < len(x)
	if topK {
		order = order[:p.TopK]
	}
	m := x[order[0]]
	e := make([]float32, len(x))
	for _, id := range order {
		e[id] = float32(math.Exp(float64(x[id] - m)))
	}
	slices.SortFunc(order, byValue(e))
	var sum float64
	if topK {
		for _, id := range order {
			sum += float64(e[id])
		}
	} else {
		for id := range e {
			sum += float64(e[id])
		}
	}
	order = slices.DeleteFunc(order, func(id int) bool { return e[id] == 0 })
	if p.TopP > 0 && p.TopP < 1 {
		var cum float64
		for i, id := range order {
			cum += float64(e[id])
			if cum >= float64(p.TopP)*sum {
				order = order[:i+1]
				break
			}
		}
	}
	if p.MinP > 0 {
		order = slices.DeleteFunc(order, func(id int) bool { return e[id] < p.MinP })
	}
	var total float64
	for _, id := range order {
		total += float64(e[id])
	}
	var cum float64
	for _, id := range order {
		cum += float64(e[id])
		if cum > float64(u)*total {
			return id
		}
	}
	return order[len(order)-1]
}

// TestMatchesReference compares Sampler with reference on random logits and
// parameters, including ties, infinities, NaN and near-flat distributions
// that defeat the top-p pre-filter.
func TestMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	pick := func(vs ...float64) float64 { return vs[r.IntN(len(vs))] }
	for c := range 1000 {
		n := int(pick(1, 2, 3, 5, 17, 100, 1000, 5000))
		// Scale 1e-5 with TopP 1e-4 gives near-flat distributions where
		// TopP < 1/n, so the top-p pre-filter removes every token and the
		// fallback must do the work.
		logits := randLogits(r, n, pick(1e-5, 0.001, 0.5, 2, 8), pick(0, 0, 0.25))
		for range r.IntN(3) {
			logits[r.IntN(n)] = float32(pick(math.Inf(-1), math.NaN(), math.Inf(1)))
		}
		history := make([]int, r.IntN(20))
		for i := range history {
			history[i] = r.IntN(n+2) - 1
		}
		p := Params{
			Temperature:       float32(pick(0, 0.3, 0.7, 1, 1.5)),
			TopK:              int(pick(0, 1, 2, 5, 40, float64(n), float64(n+3))),
			TopP:              float32(pick(0, 1e-4, 0.01, 0.5, 0.9, 0.99, 1)),
			MinP:              float32(pick(0, 0, 0.01, 0.1, 0.5, 1)),
			RepetitionPenalty: float32(pick(0, 1, 0.8, 1.3)),
			RepeatWindow:      int(pick(0, 3)),
			Seed:              r.Uint64(),
		}
		s := mustNew(t, p)
		for i := range uint32(5) {
			want := reference(p, logits, history, Uniform(p.Seed, i))
			if got := s.Sample(logits, history); got != want {
				t.Fatalf("case %d draw %d (n=%d, %+v): Sample = %d, reference = %d", c, i, n, p, got, want)
			}
		}
	}
}

func TestNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	logits := randLogits(r, 32000, 2, 0)
	history := make([]int, 256)
	for i := range history {
		history[i] = r.IntN(len(logits))
	}
	tests := []Params{
		{},
		{Temperature: 1},
		{Temperature: 0.8, TopP: 0.9},
		{Temperature: 0.8, TopK: 40, TopP: 0.9, MinP: 0.05},
		{Temperature: 0.8, MinP: 0.1, RepetitionPenalty: 1.1, RepeatWindow: 64},
		{Temperature: 1, TopP: 1e-6}, // top-p pre-filter fallback path
	}
	for _, p := range tests {
		s := mustNew(t, p)
		if a := testing.AllocsPerRun(20, func() { s.Sample(logits, history) }); a != 0 {
			t.Errorf("%+v: %v allocations per Sample, want 0", p, a)
		}
	}
}

func TestEmptyLogitsPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Sample(nil) did not panic")
		}
	}()
	mustNew(t, Params{}).Sample(nil, nil)
}

// BenchmarkSample measures top-p 0.9 sampling on two logit shapes: broad
// (normal, σ=2: the top-p set holds about a quarter of the vocabulary,
// close to the worst case for the sort) and peaked (the same plus ten
// tokens raised by 20, so that top-p keeps a handful, as is typical of a
// trained model).
func BenchmarkSample(b *testing.B) {
	for _, n := range []int{32000, 151936} {
		for _, peaked := range []bool{false, true} {
			shape := "broad"
			if peaked {
				shape = "peaked"
			}
			b.Run(fmt.Sprintf("vocab=%d/top-p=0.9/%s", n, shape), func(b *testing.B) {
				r := rand.New(rand.NewPCG(15, 16))
				logits := randLogits(r, n, 2, 0)
				if peaked {
					for range 10 {
						logits[r.IntN(n)] += 20
					}
				}
				s := mustNew(b, Params{Temperature: 1, TopP: 0.9, Seed: 1})
				s.Sample(logits, nil) // size the scratch buffers outside the loop
				b.ReportAllocs()
				for b.Loop() {
					s.Sample(logits, nil)
				}
			})
		}
	}
}
