package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's "added_tokens".
type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// tokenTrie finds added tokens in text, leftmost-longest like the
// aho-corasick automaton the reference builds.
type tokenTrie struct {
	nodes []trieNode
}

type trieNode struct {
	next  map[byte]int32
	token int32 // id of the added token ending here, or -1
}

func newTokenTrie() *tokenTrie {
	return &tokenTrie{nodes: []trieNode{{token: -1}}}
}

func (t *tokenTrie) insert(s string, id int) {
	n := int32(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		next, ok := t.nodes[n].next[c]
		if !ok {
			if t.nodes[n].next == nil {
				t.nodes[n].next = map[byte]int32{}
			}
			next = int32(len(t.nodes))
			t.nodes = append(t.nodes, trieNode{token: -1})
			t.nodes[n].next[c] = next
		}
		n = next
	}
	// The first token with given content wins, as with duplicate patterns in
	// aho-corasick.
	if t.nodes[n].token < 0 {
		t.nodes[n].token = int32(id)
	}
}

// longestAt returns the end and id of the longest token starting at s[i:],
// or ok=false.
func (t *tokenTrie) longestAt(s string, i int) (end, id int, ok bool) {
	n := int32(0)
	for j := i; j < len(s); j++ {
		next, found := t.nodes[n].next[s[j]]
		if !found {
			break
		}
		n = next
		if tok := t.nodes[n].token; tok >= 0 {
			end, id, ok = j+1, int(tok), true
		}
	}
	return end, id, ok
}

func (t *tokenTrie) empty() bool { return len(t.nodes) == 1 }

// segment is a span of text that is either an added token or plain text.
type segment struct {
	text  string
	id    int // the added token's id, or -1 for plain text
	first bool
}

// splitAdded splits s around the added tokens that trie finds, honouring
// the single_word, lstrip and rstrip flags of tokens[id] like
// AddedVocabulary::find_matches. first
// says whether s starts at the beginning of the original input. Empty text
// segments are dropped.
func splitAdded(out []segment, s string, first bool, trie *tokenTrie, tokens map[int]addedToken) []segment {
	if trie.empty() || s == "" {
		if s != "" {
			out = append(out, segment{text: s, id: -1, first: first})
		}
		return out
	}
	emit := func(start, end, id int) {
		if start < end {
			out = append(out, segment{text: s[start:end], id: id, first: first && start == 0})
		}
	}
	startOffset := 0
	for i := 0; i < len(s); {
		end, id, ok := trie.longestAt(s, i)
		if !ok {
			i++
			continue
		}
		start, stop := i, end
		i = end // the automaton resumes after the raw match, whatever happens below
		tok := tokens[id]
		if tok.SingleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if tok.LStrip {
			newStart := len(strings.TrimRightFunc(s[:start], unicode.IsSpace))
			start = max(newStart, startOffset)
		}
		if tok.RStrip {
			stop += len(s[stop:]) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
		}
		if startOffset < start {
			emit(startOffset, start, -1)
		}
		out = append(out, segment{text: s[start:stop], id: id, first: first && start == 0})
		startOffset = stop
	}
	if startOffset < len(s) {
		emit(startOffset, len(s), -1)
	}
	return out
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isWordRune(r)
}

// setTokens assigns ids to the added tokens, builds the id → text table
// and the added-token matchers.
//
// Ids follow the reference's AddedVocabulary::add_tokens rather than the
// "id" fields of the file, which it only checks with a warning: a token
// whose text is already in the vocabulary takes that id, and a new one takes
// the next id after the vocabulary and the tokens added before it. For
// consistent files, the real ones among them, both agree.
func (h *HF) setTokens(vocab map[string]int, added []addedToken) error {
	h.addedIDs = make(map[string]int, len(added))
	h.addedByID = make(map[int]addedToken, len(added))
	var specials, others []addedToken
	isSpecial := map[string]bool{}
	for _, a := range added {
		if a.Special && a.Content != "" && !isSpecial[a.Content] {
			isSpecial[a.Content] = true
			specials = append(specials, a)
		}
	}
	maxAdded := -1
	for _, a := range added {
		if a.Content == "" {
			continue
		}
		if id, ok := h.addedIDs[a.Content]; ok && identical(h.addedByID[id], a) {
			continue // an identical token is ignored
		}
		id, ok := h.addedIDs[a.Content]
		if !ok {
			id, ok = vocab[a.Content]
		}
		if !ok {
			id = len(vocab)
			if maxAdded >= len(vocab) || len(vocab) == 0 && maxAdded >= 0 {
				id = maxAdded + 1
			}
		}
		a.ID = id
		h.addedIDs[a.Content] = id
		h.addedByID[id] = a
		maxAdded = max(maxAdded, id)
		if !isSpecial[a.Content] {
			others = append(others, a)
		}
	}

	maxID := maxAdded
	for _, id := range vocab {
		maxID = max(maxID, id)
	}
	// Ids index a table, so they must be reasonably dense; this also keeps a
	// corrupt file from requesting a huge allocation.
	if limit := len(vocab) + len(added) + 1<<16; maxID >= limit {
		return fmt.Errorf("token id %d is far beyond the %d entries of the vocabulary", maxID, len(vocab)+len(added))
	}
	h.tokens = make([]string, maxID+1)
	for tok, id := range vocab {
		// Two strings with one id: keep the smaller for determinism.
		if h.tokens[id] == "" || tok < h.tokens[id] {
			h.tokens[id] = tok
		}
	}
	for id, a := range h.addedByID {
		h.tokens[id] = a.Content // the reference looks up added tokens first
	}

	// Special tokens come first among the patterns, as in the reference; for
	// equal patterns the first wins, though equal text means equal ids.
	h.rawTrie, h.normTrie = newTokenTrie(), newTokenTrie()
	for _, a := range append(specials, others...) {
		id := h.addedIDs[a.Content]
		if !a.Normalized {
			h.rawTrie.insert(a.Content, id)
			continue
		}
		content := a.Content
		if h.normalizer != nil {
			content = h.normalizer.normalize(content)
		}
		h.normTrie.insert(content, id)
	}
	return nil
}

// identical reports whether two added tokens have the same text and flags.
func identical(a, b addedToken) bool {
	a.ID, b.ID = 0, 0
	return a == b
}
