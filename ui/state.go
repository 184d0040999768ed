package ui

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Message is one turn of the conversation. Content is model or user text:
// it is only ever put into the page as text (a .textContent property),
// never parsed as HTML.
type Message struct {
	Role    string `json:"role"` // "user" or "assistant"
	Content string `json:"content"`
	Finish  string `json:"finish,omitempty"` // finish_reason of an assistant turn: stop, length, abort
	Error   string `json:"error,omitempty"`
	// Note is what the session changed to serve the request this reply
	// answers (oldest messages left out, max tokens clamped), and Dropped
	// how many of the messages sent it left out.
	Note    string `json:"note,omitempty"`
	Dropped int    `json:"dropped,omitempty"`
	// OutOfContext marks a message the model no longer sees: the last
	// reply's request left it out to fit the context.
	OutOfContext bool `json:"outOfContext,omitempty"`
	// ShowDetails opens the error's details (not saved).
	ShowDetails bool `json:"-"`
}

// Settings are what a person chooses in the settings panel. The first
// four decide which engine is loaded; the rest apply per request.
type Settings struct {
	Model          string  `json:"model"`                // manifest URL or hf:ORG/REPO[@REVISION]
	HFEndpoint     string  `json:"hfEndpoint,omitempty"` // the hub hf: models are read from; "" is the public one
	ExpertBudgetMB float64 `json:"expertBudgetMB"`
	Cache          bool    `json:"cache"`
	Backend        string  `json:"backend"` // auto (or empty), cpu or webgpu
	Temperature    float64 `json:"temperature"`
	TopP           float64 `json:"topP"`
	MaxTokens      int     `json:"maxTokens"`
}

// DefaultSettings are used on a first visit.
func DefaultSettings() Settings {
	return Settings{Cache: true, Backend: "auto", Temperature: 0.8, TopP: 0.95, MaxTokens: 256}
}

// engineKey names the engine the settings call for: a change in it means
// the model must be loaded again.
func (s Settings) engineKey() string {
	return fmt.Sprintf("%s|%s|%g|%t|%s", s.Model, s.HFEndpoint, s.ExpertBudgetMB, s.Cache, s.backend())
}

// backend is the backend to ask mode.create for.
func (s Settings) backend() string {
	if s.Backend == "" {
		return "auto"
	}
	return s.Backend
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
	// ExpertMap is per-(layer, expert) state; nil for a dense model.
	ExpertMap *EngineMap `json:"expertMap,omitempty"`
}

// EngineMap is the per-expert state the UI asks the worker to add to
// engine.stats() as "expertMap". Lists hold expert indices per layer, so
// the message stays small for models with hundreds of experts.
type EngineMap struct {
	Layers     int       `json:"layers"`
	Experts    int       `json:"experts"`    // per layer (the widest layer)
	Fetched    [][]int   `json:"fetched"`    // fetched (network or Cache Storage) since load
	Cached     [][]int   `json:"cached"`     // held by the worker's persistent store (Cache Storage or OPFS)
	Resident   [][]int   `json:"resident"`   // in the engine's expert cache (GPU buffers on webgpu)
	LastRouted [][]int   `json:"lastRouted"` // routed for the most recent token
	HitRate    []float64 `json:"layerHitRate"`
}

// Cell is the state of one expert in the map, in increasing order of
// "closeness" to the computation.
type Cell int

const (
	NotFetched Cell = iota
	Cached          // in the worker's store (or fetched earlier): no download needed
	Resident        // in the engine's memory (GPU memory on webgpu)
	Routed          // used for the current token
)

// Name is the cell state as a CSS-friendly word.
func (c Cell) Name() string {
	return [...]string{"none", "cached", "resident", "routed"}[c]
}

// Words is the cell state for people.
func (c Cell) Words() string {
	return [...]string{
		"not downloaded",
		"downloaded: in this browser's shard store on disk (Cache Storage or OPFS), not in the engine's memory",
		"in memory: in the engine's expert cache (GPU memory on WebGPU), ready to compute",
		"routed for the last token (and in memory)",
	}[c]
}

// ExpertMap is what the map draws.
type ExpertMap struct {
	Layers, Experts int
	Cells           [][]Cell
	// Heat counts, per cell, the recent tokens sampled (RouteWindow) that
	// were routed to the expert: the last token alone changes too fast to
	// read.
	Heat    [][]int
	Window  int       // how many tokens Heat counts over
	HitRate []float64 // per layer; nil when unknown
	Note    string    // what the map is based on, for people
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

// heat is how many of the recent tokens sampled used the expert.
func (m ExpertMap) heat(layer, expert int) int {
	if layer >= len(m.Heat) || expert >= len(m.Heat[layer]) {
		return 0
	}
	return m.Heat[layer][expert]
}

// CellTitle is the hover text of a cell.
func (m ExpertMap) CellTitle(layer, expert int) string {
	t := fmt.Sprintf("layer %d, expert %d: %s", layer, expert, m.Cells[layer][expert].Words())
	if m.Window > 0 {
		t += fmt.Sprintf("; routed for %d of the last %d tokens sampled", m.heat(layer, expert), m.Window)
	}
	return t
}

// heatClass buckets how often an expert was routed recently into one of
// three ring strengths, so the map shows which experts are in use
// instead of flickering with every token.
func heatClass(n, window int) string {
	if n == 0 || window == 0 {
		return ""
	}
	switch f := float64(n) / float64(window); {
	case f > 0.6:
		return " heat3"
	case f > 0.3:
		return " heat2"
	}
	return " heat1"
}

// BuildMap draws what the worker reports in stats: which experts its
// store holds, which it fetched, which are in memory and which were
// routed. The page reads neither the manifest nor the worker's storage
// itself: the worker is the one that knows. recent (may be nil) holds
// the experts routed for the last few tokens sampled.
func BuildMap(st Stats, recent *RouteWindow) ExpertMap {
	em := st.ExpertMap
	layers, experts := 0, 0
	if em != nil {
		layers, experts = em.Layers, em.Experts
	}
	m := ExpertMap{Layers: layers, Experts: experts}
	switch {
	case layers == 0 && !st.Loaded:
		m.Note = "No model loaded yet: once one is, a mixture of experts shows here which experts are downloaded, in memory and in use."
		return m
	case layers == 0 && st.ExpertsTotal > 0:
		m.Note = fmt.Sprintf("%d experts, %d in memory (the engine does not report per-expert state, so no map)", st.ExpertsTotal, st.ExpertsResident)
		return m
	case layers == 0:
		m.Note = "A dense model: every token uses the whole network, so there are no experts to map."
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
	mark(em.Fetched, Cached)
	mark(em.Cached, Cached)
	mark(em.Resident, Resident)
	mark(em.LastRouted, Routed)
	if recent != nil {
		m.Heat, m.Window = recent.heat(layers, experts), recent.Len()
	}
	if len(em.HitRate) == layers {
		m.HitRate = slices.Clone(em.HitRate)
	}
	m.Note = fmt.Sprintf("%d of %d experts in memory, %d routed for the last token", m.Count(Resident), layers*experts, m.Count(Routed))
	if m.Window > 1 {
		m.Note += fmt.Sprintf(" (the orange rings count the last %d tokens sampled)", m.Window)
	}
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

// history is the conversation to send: finished turns with text, and
// where each is in ms.
func history(ms []Message) ([]Message, []int) {
	var out []Message
	var at []int
	for i, m := range ms {
		if m.Error == "" && strings.TrimSpace(m.Content) != "" {
			out = append(out, Message{Role: m.Role, Content: m.Content})
			at = append(at, i)
		}
	}
	return out, at
}

// markContext records which messages the model saw for the last reply:
// the session left out the first dropped of those sent (at, from
// history); the rest it saw, including any it had left out before (a
// regenerated reply with fewer max tokens may fit more).
func markContext(ms []Message, at []int, dropped int) {
	for k, i := range at {
		ms[i].OutOfContext = k < dropped
	}
}

// Note is the small print under a reply: how it ended and what the
// session changed to serve it. Errors have their own line (Explain).
func Note(m Message) string {
	var parts []string
	switch m.Finish {
	case "abort":
		parts = append(parts, "Stopped.")
	case "length":
		parts = append(parts, "Cut at max tokens.")
	}
	// The session's note says what it left out and why; the count alone
	// is the fallback for a runtime that sends no note.
	switch {
	case m.Note != "":
		parts = append(parts, sentence(m.Note))
	case m.Dropped > 0:
		parts = append(parts, fmt.Sprintf("The model did not see the %s: the conversation is longer than its context.", plural(m.Dropped, "oldest message", "oldest messages")))
	}
	return strings.Join(parts, " ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// sentence turns the session's note (lower case, clauses joined by "; ",
// API names) into sentences.
func sentence(note string) string {
	var out []string
	for _, c := range strings.Split(note, "; ") {
		c = strings.TrimSpace(strings.ReplaceAll(c, "max_tokens", "max tokens"))
		if c == "" {
			continue
		}
		r, n := utf8.DecodeRuneInString(c)
		c = strings.ToUpper(string(r)) + c[n:]
		if !strings.HasSuffix(c, ".") {
			c += "."
		}
		out = append(out, c)
	}
	return strings.Join(out, " ")
}

// textKey identifies s cheaply enough to compare on every render.
func textKey(s string) string {
	h := fnv.New64a()
	h.Write([]byte(s))
	return strconv.Itoa(len(s)) + ":" + strconv.FormatUint(h.Sum64(), 36)
}

// maxBound is the most text a template binds through vugu's render
// buffer (16 KiB per instruction, see dom.go); longer text is clipped.
const maxBound = 4000

// clip shortens s to at most n bytes, on a character boundary, marking
// the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Scroll is where a scrolled element is, in CSS pixels.
type Scroll struct{ Top, Height, Client float64 }

// followSlack is how far from the end still counts as at the end: zoom
// and fractional pixels leave scrollTop a little short of the maximum.
const followSlack = 24

// AtBottom reports whether the end of the content is in view, so that new
// content should keep it in view; a person who scrolled up to read is
// left where they are.
func (s Scroll) AtBottom() bool {
	return s.Height-s.Top-s.Client <= followSlack
}

// RouteWindow keeps the experts routed for the last few tokens the stats
// were sampled at (the page polls them a few times a second, so a sample
// is some token, not every one).
type RouteWindow struct {
	Size    int
	samples [][][]int
}

// Add records a sample of lastRouted (per layer, expert indices); a
// sample equal to the one before is the same token seen again and is not
// counted twice.
func (w *RouteWindow) Add(lastRouted [][]int) {
	if len(lastRouted) == 0 {
		return
	}
	if n := len(w.samples); n > 0 && slices.EqualFunc(w.samples[n-1], lastRouted, slices.Equal[[]int]) {
		return
	}
	w.samples = append(w.samples, lastRouted)
	if over := len(w.samples) - max(1, w.Size); over > 0 {
		w.samples = slices.Delete(w.samples, 0, over)
	}
}

// Len is the number of samples held.
func (w *RouteWindow) Len() int { return len(w.samples) }

// Reset forgets every sample (another model).
func (w *RouteWindow) Reset() { w.samples = nil }

func (w *RouteWindow) heat(layers, experts int) [][]int {
	h := make([][]int, layers)
	for i := range h {
		h[i] = make([]int, experts)
	}
	for _, s := range w.samples {
		for layer, xs := range s {
			for _, x := range xs {
				if layer < layers && x >= 0 && x < experts {
					h[layer][x]++
				}
			}
		}
	}
	return h
}

// Startup is the one progress display for everything the first answer
// waits for: the manifest, the weights loaded up front (core, layers,
// tokenizer) and, for a mixture of experts, the routed experts the first
// tokens fetch, which the engine downloads lazily while it generates.
type Startup struct {
	Stage Stage
	Load  Progress // what mode.create reported
	// During StageExperts: the stats now and when the load finished, and
	// the bytes of all routed experts (the most there could be to fetch).
	Stats, AtReady Stats
	ExpertBytes    int64
}

// Stage is where the first answer is.
type Stage int

const (
	StageIdle     Stage = iota // nothing loading: the display is hidden
	StageManifest              // reading the manifest
	StageWeights               // downloading what every token uses
	StageLoaded                // loaded; nothing asked yet
	StageExperts               // the first answer is fetching its experts
)

// Visible reports whether the display shows.
func (s Startup) Visible() bool {
	return s.Stage == StageManifest || s.Stage == StageWeights || s.Stage == StageExperts
}

// Determinate reports whether the amount left is known (for the bar).
func (s Startup) Determinate() bool { return s.Stage == StageWeights && s.Load.Total > 0 }

// Permille is the share done as 0..1000, for a <progress max=1000>.
func (s Startup) Permille() int { return s.Load.Permille() }

// Text says in one line what is being waited for, with bytes and time.
func (s Startup) Text() string {
	switch s.Stage {
	case StageManifest:
		return "Reading the manifest…"
	case StageWeights:
		p := s.Load
		t := fmt.Sprintf("Downloading the model (core and layers): %s of %s, %d of %d files", Bytes(p.Bytes), Bytes(p.Total), p.Shards, p.ShardsTotal)
		if p.FromCache > 0 {
			t += fmt.Sprintf(", %d from this browser's cache", p.FromCache)
		}
		if p.ETASeconds >= 0 && p.Bytes < p.Total {
			t += ", about " + Seconds(p.ETASeconds) + " left"
		}
		return t
	case StageExperts:
		got := s.Stats.BytesFetched + s.Stats.BytesFromCache - s.AtReady.BytesFetched - s.AtReady.BytesFromCache
		n := 0
		if em := s.Stats.ExpertMap; em != nil {
			for _, xs := range em.Fetched {
				n += len(xs)
			}
		}
		t := fmt.Sprintf("Fetching the experts the first tokens route to: %s", plural(n, "expert", "experts"))
		if got > 0 {
			t += ", " + Bytes(max(0, got))
		}
		if s.ExpertBytes > 0 {
			t += " (of " + Bytes(s.ExpertBytes) + " for all of them; only those used are fetched)"
		}
		return t + "…"
	}
	return ""
}
