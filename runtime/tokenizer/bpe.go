package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// bpeModel is a Hugging Face BPE model: a vocabulary, ranked merges, and the
// rules for characters the vocabulary lacks.
type bpeModel struct {
	vocab  map[string]int
	merges map[uint64]bpeMerge // key: left id << 32 | right id
	unk    int                 // -1 when there is no unk_token
	// byteIDs[b] is the id of "<0xXX>" for byte b, or -1.
	byteIDs      [256]int
	byteFallback bool
	fuseUnk      bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
}

type bpeMerge struct {
	rank int32
	id   int32
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// addMerges resolves merge pairs of token strings to ids. As in the
// reference, a later duplicate pair overrides an earlier one.
func (m *bpeModel) addMerges(pairs [][2]string) error {
	m.merges = make(map[uint64]bpeMerge, len(pairs))
	for rank, p := range pairs {
		a, ok := m.vocab[p[0]]
		if !ok {
			return fmt.Errorf("merge %d (%q %q): %q is not in the vocabulary", rank, p[0], p[1], p[0])
		}
		b, ok := m.vocab[p[1]]
		if !ok {
			return fmt.Errorf("merge %d (%q %q): %q is not in the vocabulary", rank, p[0], p[1], p[1])
		}
		right := p[1]
		if m.prefix != "" {
			if len(right) < len(m.prefix) || right[:len(m.prefix)] != m.prefix {
				return fmt.Errorf("merge %d (%q %q): right side lacks continuing_subword_prefix %q", rank, p[0], p[1], m.prefix)
			}
			right = right[len(m.prefix):]
		}
		merged := p[0] + right
		id, ok := m.vocab[merged]
		if !ok {
			return fmt.Errorf("merge %d (%q %q): result %q is not in the vocabulary", rank, p[0], p[1], merged)
		}
		m.merges[pairKey(a, b)] = bpeMerge{rank: int32(rank), id: int32(id)}
	}
	return nil
}

// pair is the pairFunc for mergePairs: lower rank merges first.
func (m *bpeModel) pair(a, b int) (int, float64, bool) {
	mg, ok := m.merges[pairKey(a, b)]
	return int(mg.id), float64(mg.rank), ok
}

// encodeWord appends the ids of one pre-tokenized word, following the
// reference's BPE::merge_word.
func (m *bpeModel) encodeWord(dst []int, w string) []int {
	if w == "" {
		return dst
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[w]; ok {
			return append(dst, id)
		}
	}
	start := len(dst)
	unkID, unkPending := -1, false
	flushUnk := func() {
		if unkPending {
			dst = append(dst, unkID)
			unkPending = false
		}
	}
	for i := 0; i < len(w); {
		_, size := utf8.DecodeRuneInString(w[i:])
		s := w[i : i+size]
		if i > 0 && m.prefix != "" {
			s = m.prefix + s
		}
		if i+size == len(w) && m.suffix != "" {
			s += m.suffix
		}
		i += size
		if id, ok := m.vocab[s]; ok {
			flushUnk()
			dst = append(dst, id)
			continue
		}
		if m.byteFallback && m.appendBytes(&dst, s) {
			// Like the reference, a pending unk is not flushed here.
			continue
		}
		if m.unk < 0 {
			continue // no unk token: the reference drops the character
		}
		if unkPending && !m.fuseUnk {
			flushUnk()
		}
		unkID, unkPending = m.unk, true
	}
	flushUnk()
	word := mergePairs(dst[start:], m.pair)
	return dst[:start+len(word)]
}

// appendBytes appends the byte-fallback ids of s if every byte has one.
func (m *bpeModel) appendBytes(dst *[]int, s string) bool {
	for i := 0; i < len(s); i++ {
		if m.byteIDs[s[i]] < 0 {
			return false
		}
	}
	for i := 0; i < len(s); i++ {
		*dst = append(*dst, m.byteIDs[s[i]])
	}
	return true
}

// buildBPE checks and converts the model section.
func buildBPE(f *hfFile) (*bpeModel, error) {
	mc := &f.Model
	if mc.Type != "BPE" && !(mc.Type == "" && mc.Vocab != nil && mc.Merges != nil) {
		return nil, fmt.Errorf("unsupported model type %q (only BPE)", mc.Type)
	}
	if mc.Vocab == nil {
		return nil, fmt.Errorf("BPE model without vocab")
	}
	if mc.Dropout != nil && *mc.Dropout != 0 {
		return nil, fmt.Errorf("BPE dropout %v is not supported (encoding would be random)", *mc.Dropout)
	}
	m := &bpeModel{
		vocab:        mc.Vocab,
		unk:          -1,
		byteFallback: mc.ByteFallback,
		fuseUnk:      mc.FuseUnk,
		ignoreMerges: mc.IgnoreMerges,
	}
	if mc.ContinuingSubwordPrefix != nil {
		m.prefix = *mc.ContinuingSubwordPrefix
	}
	if mc.EndOfWordSuffix != nil {
		m.suffix = *mc.EndOfWordSuffix
	}
	for tok, id := range mc.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("vocab entry %q has negative id %d", tok, id)
		}
	}
	if mc.UnkToken != nil {
		id, ok := mc.Vocab[*mc.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocabulary", *mc.UnkToken)
		}
		m.unk = id
	}
	for b := range m.byteIDs {
		m.byteIDs[b] = -1
		if id, ok := mc.Vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteIDs[b] = id
		}
	}
	pairs, err := parseMerges(mc.Merges)
	if err != nil {
		return nil, err
	}
	if err := m.addMerges(pairs); err != nil {
		return nil, err
	}
	return m, nil
}

// parseMerges accepts both spellings of merges: "a b" strings (split at the
// one space) and ["a", "b"] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, fmt.Errorf("BPE model without merges")
	}
	// Look at the first element to pick the spelling: decoding the wrong one
	// first would walk all the merges before failing.
	if first := bytes.TrimLeft(bytes.TrimPrefix(bytes.TrimSpace(raw), []byte("[")), " \t\r\n"); len(first) == 0 || first[0] != '[' {
		var legacy []string
		if err := json.Unmarshal(raw, &legacy); err != nil {
			return nil, fmt.Errorf("merges are neither strings nor pairs of strings: %w", err)
		}
		pairs := make([][2]string, len(legacy))
		for i, s := range legacy {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("merge %d %q is not two tokens separated by one space", i, s)
			}
			pairs[i] = [2]string{a, b}
		}
		return pairs, nil
	}
	var tuples [][]string
	if err := json.Unmarshal(raw, &tuples); err != nil {
		return nil, fmt.Errorf("merges are neither strings nor pairs of strings: %w", err)
	}
	pairs := make([][2]string, len(tuples))
	for i, t := range tuples {
		if len(t) != 2 {
			return nil, fmt.Errorf("merge %d has %d elements, want 2", i, len(t))
		}
		pairs[i] = [2]string{t[0], t[1]}
	}
	return pairs, nil
}
