package ui

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Message is one turn of the conversation. Content is model or user text:
// it is only ever put into the page as text (a .textContent property),
// never parsed as HTML.
type Message struct {
	Role    string `json:"role"` // "user" or "assistant"
	Content string `json:"content"`
	Finish  string `json:"finish,omitempty"` // finish_reason of an assistant turn: stop, length, abort
	Error   string `json:"error,omitempty"`
}

// Settings are what a person chooses in the settings panel. The first
// three decide which engine is loaded; the rest apply per request.
type Settings struct {
	Model          string  `json:"model"` // manifest URL
	ExpertBudgetMB float64 `json:"expertBudgetMB"`
	Cache          bool    `json:"cache"`
	Temperature    float64 `json:"temperature"`
	TopP           float64 `json:"topP"`
	MaxTokens      int     `json:"maxTokens"`
}

// DefaultSettings are used on a first visit.
func DefaultSettings() Settings {
	return Settings{Cache: true, Temperature: 0.8, TopP: 0.95, MaxTokens: 256}
}

// engineKey names the engine the settings call for: a change in it means
// the model must be loaded again.
func (s Settings) engineKey() string {
	return fmt.Sprintf("%s|%g|%t", s.Model, s.ExpertBudgetMB, s.Cache)
}

// Pack is one entry of the devserver's /packs/ list.
type Pack struct {
	Name     string `json:"name"`
	Manifest string `json:"manifest"`
}

// Progress is what mode.create's onProgress reports.
type Progress struct {
	Phase       string  `json:"phase"`
	Bytes       int64   `json:"bytes"`
	Total       int64   `json:"total"`
	Shards      int     `json:"shards"`
	ShardsTotal int     `json:"shardsTotal"`
	FromCache   int     `json:"fromCache"`
	ETASeconds  float64 `json:"etaSeconds"`
}

// Text describes the progress in one line.
func (p Progress) Text() string {
	if p.Phase == "" || p.Phase == "manifest" {
		return "reading the manifest…"
	}
	s := fmt.Sprintf("%s of %s, %d/%d shards", Bytes(p.Bytes), Bytes(p.Total), p.Shards, p.ShardsTotal)
	if p.FromCache > 0 {
		s += fmt.Sprintf(" (%d from cache)", p.FromCache)
	}
	switch {
	case p.Phase == "ready":
		s += ", ready"
	case p.ETASeconds >= 0:
		s += fmt.Sprintf(", about %s left", Seconds(p.ETASeconds))
	}
	return s
}

// Permille is the progress as 0..1000, for a <progress max=1000>.
func (p Progress) Permille() int {
	if p.Total <= 0 {
		return 0
	}
	return int(min(1000, p.Bytes*1000/p.Total))
}

// Stats is what engine.stats() returns, as far as the UI uses it.
type Stats struct {
	Loaded          bool    `json:"loaded"`
	BytesFetched    int64   `json:"bytesFetched"`
	BytesFromCache  int64   `json:"bytesFromCache"`
	ExpertsResident int     `json:"expertsResident"`
	ExpertsTotal    int     `json:"expertsTotal"`
	ExpertHitRate   float64 `json:"expertCacheHitRate"`
	Prefetched      int     `json:"prefetched"`
	PrefetchHits    int     `json:"prefetchHits"`
	Substitutions   int     `json:"substitutions"`
	Prefill         float64 `json:"prefillTokensPerSecond"`
	Decode          float64 `json:"decodeTokensPerSecond"`
	// ExpertMap is per-(layer, expert) state; nil while the worker does
	// not report it (the map then falls back to the manifest and Cache
	// Storage).
	ExpertMap *EngineMap `json:"expertMap,omitempty"`
}

// EngineMap is the per-expert state the UI asks the worker to add to
// engine.stats() as "expertMap". Lists hold expert indices per layer, so
// the message stays small for models with hundreds of experts.
type EngineMap struct {
	Layers     int       `json:"layers"`
	Experts    int       `json:"experts"`    // per layer (the widest layer)
	Fetched    [][]int   `json:"fetched"`    // fetched (network or Cache Storage) since load
	Cached     [][]int   `json:"cached"`     // present in Cache Storage (optional)
	Resident   [][]int   `json:"resident"`   // in the engine's expert cache (GPU buffers on webgpu)
	LastRouted [][]int   `json:"lastRouted"` // routed for the most recent token
	HitRate    []float64 `json:"layerHitRate"`
}

// Cell is the state of one expert in the map, in increasing order of
// "closeness" to the computation.
type Cell int

const (
	NotFetched Cell = iota
	Cached          // in Cache Storage (or fetched earlier): no download needed
	Resident        // in the engine's memory (GPU memory on webgpu)
	Routed          // used for the current token
)

// Name is the cell state as a CSS-friendly word.
func (c Cell) Name() string {
	return [...]string{"none", "cached", "resident", "routed"}[c]
}

// Layout is where the experts of a pack are: from its manifest.
type Layout struct {
	Layers, Experts int
	sha             map[[2]int]string // (layer, expert) → content hash
}

// ParseLayout reads the expert shards of a manifest.
func ParseLayout(manifest []byte) (Layout, error) {
	var m struct {
		Shards []struct {
			Kind   string `json:"kind"`
			Layer  int    `json:"layer"`
			Expert int    `json:"expert"`
			SHA256 string `json:"sha256"`
		} `json:"shards"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return Layout{}, fmt.Errorf("reading the manifest: %w", err)
	}
	l := Layout{sha: map[[2]int]string{}}
	for _, s := range m.Shards {
		if s.Kind != "expert" || s.Layer < 0 || s.Expert < 0 {
			continue
		}
		l.sha[[2]int{s.Layer, s.Expert}] = s.SHA256
		l.Layers = max(l.Layers, s.Layer+1)
		l.Experts = max(l.Experts, s.Expert+1)
	}
	return l, nil
}

// ExpertMap is what the map draws.
type ExpertMap struct {
	Layers, Experts int
	Cells           [][]Cell
	HitRate         []float64 // per layer; nil when unknown
	Note            string    // what the map is based on, for people
}

// Count returns how many cells are in state c or closer.
func (m ExpertMap) Count(c Cell) int {
	n := 0
	for _, row := range m.Cells {
		for _, x := range row {
			if x >= c {
				n++
			}
		}
	}
	return n
}

// BuildMap combines what is known: the worker's per-expert state when
// stats carry it, else the manifest's layout with the content hashes
// found in Cache Storage (cached is nil when that could not be read).
func BuildMap(l Layout, cached map[string]bool, st Stats) ExpertMap {
	em := st.ExpertMap
	layers, experts := l.Layers, l.Experts
	if em != nil {
		layers, experts = max(layers, em.Layers), max(experts, em.Experts)
	}
	m := ExpertMap{Layers: layers, Experts: experts}
	switch {
	case layers == 0 && st.ExpertsTotal > 0:
		m.Note = fmt.Sprintf("%d experts, %d in memory (the manifest could not be read, so no map)", st.ExpertsTotal, st.ExpertsResident)
		return m
	case layers == 0:
		m.Note = "dense model: every token uses the whole network, so there are no experts to map"
		return m
	}
	m.Cells = make([][]Cell, layers)
	for i := range m.Cells {
		m.Cells[i] = make([]Cell, experts)
	}
	mark := func(lists [][]int, c Cell) {
		for layer, xs := range lists {
			for _, x := range xs {
				if layer < layers && x >= 0 && x < experts && m.Cells[layer][x] < c {
					m.Cells[layer][x] = c
				}
			}
		}
	}
	for k, sum := range l.sha {
		if cached[sum] {
			m.Cells[k[0]][k[1]] = Cached
		}
	}
	if em == nil {
		m.Note = fmt.Sprintf("%d of %d experts in memory; this map shows Cache Storage only (the engine does not report per-expert state)",
			st.ExpertsResident, st.ExpertsTotal)
		return m
	}
	mark(em.Fetched, Cached)
	mark(em.Cached, Cached)
	mark(em.Resident, Resident)
	mark(em.LastRouted, Routed)
	if len(em.HitRate) == layers {
		m.HitRate = slices.Clone(em.HitRate)
	}
	m.Note = fmt.Sprintf("%d of %d experts in memory, %d routed for the last token", m.Count(Resident), layers*experts, m.Count(Routed))
	return m
}

// Bytes formats a byte count for people.
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Seconds formats a duration in seconds for people.
func Seconds(s float64) string {
	switch {
	case s < 1:
		return "under a second"
	case s < 90:
		return fmt.Sprintf("%.0f s", s)
	}
	return fmt.Sprintf("%.0f min", s/60)
}

// Speed describes prefill and decode speeds.
func (s Stats) Speed() string {
	if s.Prefill == 0 && s.Decode == 0 {
		return ""
	}
	return fmt.Sprintf("prefill %.0f tok/s · decode %.1f tok/s", s.Prefill, s.Decode)
}

// Traffic describes the bytes moved.
func (s Stats) Traffic() string {
	if !s.Loaded {
		return ""
	}
	return fmt.Sprintf("network %s · from cache %s", Bytes(s.BytesFetched), Bytes(s.BytesFromCache))
}

// HitText formats a per-layer hit rate.
func HitText(rates []float64, layer int) string {
	if layer >= len(rates) || rates[layer] < 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", rates[layer]*100)
}

// history is the conversation the model sees: finished turns with text.
func history(ms []Message) []Message {
	var out []Message
	for _, m := range ms {
		if m.Error == "" && strings.TrimSpace(m.Content) != "" {
			out = append(out, Message{Role: m.Role, Content: m.Content})
		}
	}
	return out
}
