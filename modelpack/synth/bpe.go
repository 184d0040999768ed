package synth

import (
	"maps"
	"slices"
	"strings"
)

// byteRunes is GPT-2's bytes_to_unicode: printable bytes stand for
// themselves, the rest are shifted to code points from 256 up, so every
// byte has a visible, non-space character in vocab and merges.
func byteRunes() [256]rune {
	var m [256]rune
	next := rune(256)
	for b := range 256 {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			m[b] = rune(b)
		} else {
			m[b] = next
			next++
		}
	}
	return m
}

// bpe is a learned byte-level BPE: tokens by id, as raw bytes, and merges
// in rank order.
type bpe struct {
	tokens []string
	merges [][2]string
}

// trainBPE learns merges on text until there are size tokens: the 256
// single bytes, then one per merge. It stops early if the text runs out of
// pairs. Ties between equally frequent pairs go to the lexically smallest,
// so training is deterministic.
func trainBPE(text string, size int) bpe {
	var b bpe
	have := map[string]bool{}
	for i := range 256 {
		b.tokens = append(b.tokens, string([]byte{byte(i)}))
		have[b.tokens[i]] = true
	}
	// Distinct pre-tokenized words, each as its current symbols, with counts.
	counts := map[string]int{}
	for _, w := range splitGPT2(text) {
		counts[w]++
	}
	type word struct {
		syms  []string
		count int
	}
	var words []word
	for _, w := range slices.Sorted(maps.Keys(counts)) {
		syms := make([]string, len(w))
		for i := range len(w) {
			syms[i] = w[i : i+1]
		}
		words = append(words, word{syms, counts[w]})
	}
	done := map[[2]string]bool{}
	for len(b.tokens) < size {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pairs[[2]string{w.syms[i], w.syms[i+1]}] += w.count
			}
		}
		if len(pairs) == 0 {
			break
		}
		var best [2]string
		bestN := 0
		for p, n := range pairs {
			if n > bestN || n == bestN && less(p, best) {
				best, bestN = p, n
			}
		}
		merged := best[0] + best[1]
		if !done[best] { // a pair can reappear once a later merge respells one side
			done[best] = true
			b.merges = append(b.merges, best)
		}
		if !have[merged] { // two merge paths can spell the same token
			have[merged] = true
			b.tokens = append(b.tokens, merged)
		}
		for wi := range words {
			words[wi].syms = mergePair(words[wi].syms, best, merged)
		}
	}
	return b
}

func less(a, b [2]string) bool {
	if c := strings.Compare(a[0], b[0]); c != 0 {
		return c < 0
	}
	return a[1] < b[1]
}

// mergePair replaces each non-overlapping occurrence of p, left to right.
func mergePair(syms []string, p [2]string, merged string) []string {
	out := syms[:0]
	for i := 0; i < len(syms); i++ {
		if i+1 < len(syms) && syms[i] == p[0] && syms[i+1] == p[1] {
			out = append(out, merged)
			i++
			continue
		}
		out = append(out, syms[i])
	}
	return out
}

// visible spells raw token bytes in the byte-level alphabet.
func visible(table *[256]rune, raw string) string {
	var sb strings.Builder
	for i := range len(raw) {
		sb.WriteRune(table[raw[i]])
	}
	return sb.String()
}
