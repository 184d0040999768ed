package tokenizer

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// Unicode Normalization Form C (UAX #15), from the tables in nfc_tables.go.
//
// The tables hold Unicode 9.0 data on purpose: that is what the Hugging Face
// tokenizers library normalizes with (its unicode-normalization-alignments
// dependency), and matching its ids matters more here than following the
// latest standard. Characters assigned after 9.0 pass through unchanged.

type cccRange struct {
	lo, hi rune
	ccc    uint8
}

type decompEntry struct {
	r, first, second rune // second is 0 for a singleton decomposition
}

type compEntry struct {
	first, second, composite rune
}

// Hangul syllables decompose and compose arithmetically.
const (
	hangulSBase  = 0xAC00
	hangulLBase  = 0x1100
	hangulVBase  = 0x1161
	hangulTBase  = 0x11A7
	hangulLCount = 19
	hangulVCount = 21
	hangulTCount = 28
	hangulNCount = hangulVCount * hangulTCount
	hangulSCount = hangulLCount * hangulNCount
)

// nfc returns s in Normalization Form C.
func nfc(s string) string {
	if nfcQuickCheck(s) {
		return s
	}
	// Decompose fully, then put each run of non-starters in canonical order.
	rs := make([]rune, 0, len(s))
	for _, r := range s {
		rs = appendDecomposed(rs, r)
	}
	for i := 0; i < len(rs); {
		if combiningClass(rs[i]) == 0 {
			i++
			continue
		}
		j := i
		for j < len(rs) && combiningClass(rs[j]) != 0 {
			j++
		}
		run := rs[i:j]
		sort.SliceStable(run, func(a, b int) bool { return combiningClass(run[a]) < combiningClass(run[b]) })
		i = j
	}
	rs = compose(rs)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range rs {
		b.WriteRune(r)
	}
	return b.String()
}

// nfcQuickCheck reports whether s is certainly already in NFC, using the
// NFC_QC property: no character that NFC always replaces, none that might
// compose with its predecessor, and combining marks in canonical order.
func nfcQuickCheck(s string) bool {
	var last uint8
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			last = 0
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if r < 0x300 { // Latin-1 and Latin Extended are all NFC_QC=Yes starters
			last = 0
			continue
		}
		cc := combiningClass(r)
		if cc != 0 && cc < last || isNFCNo(r) || canComposeWithPrevious(r) {
			return false
		}
		last = cc
	}
	return true
}

func isNFCNo(r rune) bool {
	t := nfcNotYes[:]
	i := sort.Search(len(t), func(i int) bool { return t[i] >= r })
	return i < len(t) && t[i] == r
}

func combiningClass(r rune) uint8 {
	t := nfcCombining[:]
	i := sort.Search(len(t), func(i int) bool { return t[i].hi >= r })
	if i < len(t) && t[i].lo <= r {
		return t[i].ccc
	}
	return 0
}

func lookupDecomp(r rune) (decompEntry, bool) {
	t := nfcDecomp[:]
	i := sort.Search(len(t), func(i int) bool { return t[i].r >= r })
	if i < len(t) && t[i].r == r {
		return t[i], true
	}
	return decompEntry{}, false
}

func canComposeWithPrevious(r rune) bool {
	if r >= hangulVBase && r < hangulVBase+hangulVCount || r > hangulTBase && r < hangulTBase+hangulTCount {
		return true
	}
	t := nfcSecond[:]
	i := sort.Search(len(t), func(i int) bool { return t[i] >= r })
	return i < len(t) && t[i] == r
}

// appendDecomposed appends the full canonical decomposition of r.
func appendDecomposed(dst []rune, r rune) []rune {
	if r >= hangulSBase && r < hangulSBase+hangulSCount {
		si := r - hangulSBase
		dst = append(dst, hangulLBase+si/hangulNCount, hangulVBase+(si%hangulNCount)/hangulTCount)
		if t := si % hangulTCount; t != 0 {
			dst = append(dst, hangulTBase+t)
		}
		return dst
	}
	d, ok := lookupDecomp(r)
	if !ok {
		return append(dst, r)
	}
	dst = appendDecomposed(dst, d.first)
	if d.second != 0 {
		dst = appendDecomposed(dst, d.second)
	}
	return dst
}

// composePair returns the primary composite of a and b, if there is one.
func composePair(a, b rune) (rune, bool) {
	if a >= hangulLBase && a < hangulLBase+hangulLCount && b >= hangulVBase && b < hangulVBase+hangulVCount {
		return hangulSBase + ((a-hangulLBase)*hangulVCount+(b-hangulVBase))*hangulTCount, true
	}
	if a >= hangulSBase && a < hangulSBase+hangulSCount && (a-hangulSBase)%hangulTCount == 0 &&
		b > hangulTBase && b < hangulTBase+hangulTCount {
		return a + (b - hangulTBase), true
	}
	t := nfcCompose[:]
	i := sort.Search(len(t), func(i int) bool {
		return t[i].first > a || t[i].first == a && t[i].second >= b
	})
	if i < len(t) && t[i].first == a && t[i].second == b {
		return t[i].composite, true
	}
	return 0, false
}

// compose applies the canonical composition algorithm to a decomposed,
// canonically ordered sequence, in place.
func compose(rs []rune) []rune {
	if len(rs) == 0 {
		return rs
	}
	starter := -1
	if combiningClass(rs[0]) == 0 {
		starter = 0
	}
	// last is the combining class of the last character kept since the
	// starter; 256 marks "blocked" for sequences that begin with non-starters.
	last := 0
	if starter < 0 {
		last = 256
	}
	out := 1
	for i := 1; i < len(rs); i++ {
		r := rs[i]
		cc := int(combiningClass(r))
		if starter >= 0 && (last < cc || last == 0) {
			if c, ok := composePair(rs[starter], r); ok {
				rs[starter] = c
				continue
			}
		}
		if cc == 0 {
			starter = out
		}
		last = cc
		rs[out] = r
		out++
	}
	return rs[:out]
}
