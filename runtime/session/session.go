package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/sample"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

// Options configures a Session.
type Options struct {
	// Tokenizer turns text into the model's ids and back (required).
	Tokenizer tokenizer.Tokenizer
	// AddBOS starts completion prompts (and chat prompts of formats
	// without a Jinja template of their own) with the BOS token.
	AddBOS bool
	// ChatTemplate is the model's Jinja chat template; "" means none (a
	// plain "Role: text" format).
	ChatTemplate string
	// Model names the model in responses.
	Model string
	// Seed is the base of the seeds drawn for requests that give none.
	Seed uint64
	// Tick, when set, is called after every generated token: a caller on
	// a single-threaded platform lets its event loop run there.
	Tick func()
	// Now, when set, is the time a chat template's strftime_now formats
	// (time.Now otherwise); tests fix it.
	Now func() time.Time
}

// Session serves requests on one engine, keeping what is in its KV cache.
type Session struct {
	eng    *engine.Engine
	opt    Options
	format chatFormat
	// The chat stop rules: ids (EOS and the format's single-token stops)
	// and strings (the format's other stops).
	stopIDs  []int
	stopText []string

	// cached holds the ids whose keys and values are in the engine's
	// cache, at positions 0..len(cached)-1.
	cached []int
	// draws counts the seeds drawn for requests without one.
	draws uint64
	last  engine.Result
}

// New returns a session on eng, which it then drives alone. Should
// something else move the engine's position, the session notices and
// prefills its next request from an empty context.
func New(eng *engine.Engine, o Options) (*Session, error) {
	if o.Tokenizer == nil {
		return nil, errors.New("session: Options.Tokenizer is nil")
	}
	if o.Tick == nil {
		o.Tick = func() {}
	}
	cfg := eng.Config()
	s := &Session{eng: eng, opt: o,
		format: formatFor(o.ChatTemplate, tokenText(o.Tokenizer, cfg.BOS), tokenText(o.Tokenizer, firstOr(cfg.EOS, -1)))}
	s.format.now = o.Now
	s.stopIDs = append(s.stopIDs, cfg.EOS...)
	for _, st := range s.format.Stop {
		if ids := o.Tokenizer.Encode(st); len(ids) == 1 && o.Tokenizer.Token(ids[0]) == st {
			s.stopIDs = append(s.stopIDs, ids[0])
		} else {
			s.stopText = append(s.stopText, st)
		}
	}
	return s, nil
}

// Template names the chat format in use: "jinja" (the model's template),
// a recognised family ("chatml", "llama3") or "plain".
func (s *Session) Template() string { return s.format.Name }

// TemplateNote says why the model's own chat template is not used, when
// it is not (it does not parse); "" otherwise.
func (s *Session) TemplateNote() string { return s.format.Note }

// Cached returns the ids whose keys and values the engine's cache holds.
func (s *Session) Cached() []int { return slices.Clone(s.cached) }

// Last returns the engine's summary of the latest generation.
func (s *Session) Last() engine.Result { return s.last }

// Reset empties the engine's context and forgets what it held.
func (s *Session) Reset() {
	s.eng.Reset()
	s.cached = s.cached[:0]
}

// Chat answers r.Messages. With r.Stream set, chunk receives each piece
// of the reply as it is generated, then a final chunk with the finish
// reason and usage. A cancelled ctx ends the reply with finish reason
// "abort" and no error.
func (s *Session) Chat(ctx context.Context, r Request, chunk func(*Completion)) (*Completion, error) {
	return s.generate(ctx, true, r, chunk)
}

// Complete continues r.Prompt, as Chat answers messages.
func (s *Session) Complete(ctx context.Context, r Request, chunk func(*Completion)) (*Completion, error) {
	return s.generate(ctx, false, r, chunk)
}

// golden is 2^64/φ: successive multiples spread over the seed space.
const golden = 0x9E3779B97F4A7C15

// sampler validates r's sampling parameters and returns the sampler, with
// the seed it uses (nil for greedy decoding).
func (s *Session) sampler(r Request) (*sample.Sampler, *uint64, error) {
	sp := sample.Params{Temperature: 1, TopP: 1}
	if r.Temperature != nil {
		sp.Temperature = float32(*r.Temperature)
	}
	if r.TopP != nil {
		sp.TopP = float32(*r.TopP)
	}
	if err := sp.Validate(); err != nil {
		return nil, nil, badRequest(err)
	}
	var seed *uint64
	if sp.Temperature > 0 {
		if r.Seed != nil {
			sp.Seed = *r.Seed
		} else {
			// A new seed per request: regenerating must not repeat the
			// reply, and the first request of a session uses the base
			// seed itself.
			sp.Seed = s.opt.Seed + s.draws*golden
			s.draws++
		}
		seed = &sp.Seed
	}
	smp, err := sample.New(sp)
	if err != nil {
		return nil, nil, badRequest(err)
	}
	return smp, seed, nil
}

// prompt is a request rendered to ids.
type prompt struct {
	ids      []int
	dropped  int
	stopIDs  []int // nil: the model's EOS
	stopText []string
}

func (s *Session) prompt(chat bool, r Request) (prompt, error) {
	if !chat {
		if r.Prompt == nil {
			return prompt{}, badRequest(errors.New("prompt is missing"))
		}
		return prompt{ids: s.encode(*r.Prompt, false), stopText: r.Stop}, nil
	}
	ids, dropped, err := s.fit(r.Messages, s.reserve(r.MaxTokens))
	if err != nil {
		return prompt{}, err
	}
	return prompt{ids: ids, dropped: dropped, stopIDs: s.stopIDs, stopText: append(slices.Clone(s.stopText), r.Stop...)}, nil
}

// reserve is the room a chat request keeps for its reply: maxTokens, at
// most half the context, so the conversation keeps the other half.
func (s *Session) reserve(maxTokens int) int {
	half := s.eng.MaxSeq() / 2
	if maxTokens <= 0 || maxTokens > half {
		return half
	}
	return maxTokens
}

// fit renders msgs to ids that leave reserve tokens of the context,
// leaving out the oldest turns when they must, and returns how many
// messages it left out. A turn starts at a user message; the leading
// system messages and the last user message on are always kept.
func (s *Session) fit(msgs []Message, reserve int) ([]int, int, error) {
	render := func(kept []Message) ([]int, error) {
		text, err := s.format.render(kept)
		if err != nil {
			return nil, badRequest(err)
		}
		return s.encode(text, true), nil
	}
	limit := s.eng.MaxSeq() - reserve
	ids, err := render(msgs)
	if err != nil || len(ids) <= limit {
		return ids, 0, err
	}
	head := 0
	for head < len(msgs) && msgs[head].Role == "system" {
		head++
	}
	// Where the kept turns may start: each user message after the first
	// kept one.
	var starts []int
	for i := head + 1; i < len(msgs); i++ {
		if msgs[i].Role == "user" {
			starts = append(starts, i)
		}
	}
	without := func(i int) []Message { return append(slices.Clone(msgs[:head]), msgs[i:]...) }
	// Leaving out more turns never lengthens the prompt: search for the
	// fewest that fit.
	best, bestIDs := -1, []int(nil)
	lo, hi := 0, len(starts)-1
	for lo <= hi {
		mid := (lo + hi) / 2
		got, err := render(without(starts[mid]))
		if err == nil && len(got) <= limit {
			best, bestIDs, hi = mid, got, mid-1
		} else {
			lo = mid + 1
		}
	}
	if best >= 0 {
		return bestIDs, starts[best] - head, nil
	}
	// Not even the last user message leaves the reserve: keep it anyway
	// while it leaves room for a reply at all.
	last := len(msgs) - 1
	if len(starts) > 0 {
		last = starts[len(starts)-1]
	} else if head < len(msgs) {
		last = head
	}
	if last > head {
		if ids, err = render(without(last)); err != nil {
			return nil, 0, err
		}
	}
	if len(ids) >= s.eng.MaxSeq() {
		return nil, 0, badRequest(fmt.Errorf("the system prompt and the last message are %d tokens; the context holds %d: shorten them", len(ids), s.eng.MaxSeq()))
	}
	return ids, last - head, nil
}

// encode tokenizes a prompt, with BOS when the model (or the chat format)
// starts with it. A Jinja template writes its own bos_token text, so a chat
// prompt it rendered gets no second one (as apply_chat_template does).
func (s *Session) encode(text string, chat bool) []int {
	ids := s.opt.Tokenizer.Encode(text)
	if chat && s.format.tpl != nil {
		return ids
	}
	if bos := s.eng.Config().BOS; bos >= 0 && (s.opt.AddBOS || (chat && s.format.BOS)) {
		ids = append([]int{bos}, ids...)
	}
	return ids
}

// reuse rewinds the engine to the longest common prefix of its cache with
// ids, leaving at least the last id to prefill (its logits start the
// reply), and returns the prefix's length.
func (s *Session) reuse(ids []int) (int, error) {
	if s.eng.Pos() != len(s.cached) {
		// Something else moved the engine: trust none of its cache.
		s.Reset()
	}
	n := 0
	for n < len(ids)-1 && n < len(s.cached) && s.cached[n] == ids[n] {
		n++
	}
	if !s.eng.CanTruncate(n) {
		n = 0 // a sliding-window ring no longer holds the prefix's window
	}
	if err := s.eng.Truncate(n); err != nil {
		return 0, err
	}
	s.cached = s.cached[:n]
	return n, nil
}

var errStop = errors.New("stop string reached")

func (s *Session) generate(ctx context.Context, chat bool, r Request, chunk func(*Completion)) (*Completion, error) {
	if r.MaxTokens < 0 {
		return nil, badRequest(fmt.Errorf("max_tokens is %d: want 1 or more (or leave it out)", r.MaxTokens))
	}
	smp, seed, err := s.sampler(r)
	if err != nil {
		return nil, err
	}
	p, err := s.prompt(chat, r)
	if err != nil {
		return nil, err
	}
	ctxLen := s.eng.MaxSeq()
	if len(p.ids) == 0 {
		return nil, badRequest(errors.New("the prompt is empty and the model has no BOS token to start from"))
	}
	if len(p.ids) >= ctxLen {
		return nil, badRequest(fmt.Errorf("the prompt is %d tokens; the context holds %d: shorten it", len(p.ids), ctxLen))
	}
	var notes []string
	if p.dropped > 0 {
		notes = append(notes, fmt.Sprintf("the conversation passed the context of %d tokens: its %d oldest messages were left out", ctxLen, p.dropped))
	}
	maxTokens := r.MaxTokens
	if room := ctxLen - len(p.ids); maxTokens == 0 || maxTokens > room {
		if maxTokens > room {
			notes = append(notes, fmt.Sprintf("max_tokens %d was clamped to the %d tokens left in the context", maxTokens, room))
		}
		maxTokens = room
	}

	reused, err := s.reuse(p.ids)
	if err != nil {
		return nil, &Error{CodeGenerateFailed, err}
	}
	tok := s.opt.Tokenizer
	dec := tok.NewStream()
	if a, ok := tok.(interface{ NewStreamAfter(int) *tokenizer.Stream }); ok {
		dec = a.NewStreamAfter(p.ids[len(p.ids)-1])
	}
	stop := stopper{stops: p.stopText}
	out := newResponse(chat, s.opt.Model)
	var ids []int
	var full, reasoning strings.Builder
	hitStop := false
	show := func(piece string) {
		if piece == "" {
			return
		}
		full.WriteString(piece)
		if r.Stream && chunk != nil {
			chunk(out.chunk(piece, nil))
		}
	}
	emit, flushHarmony := show, func() {}
	if chat && s.format.Harmony {
		hf := &harmony{}
		hide := func(piece string) {
			if piece == "" {
				return
			}
			reasoning.WriteString(piece)
			if r.Stream && chunk != nil {
				chunk(out.reasoning(piece))
			}
		}
		emit = func(piece string) {
			sh, hd := hf.push(piece)
			hide(hd)
			show(sh)
		}
		flushHarmony = func() {
			sh, hd := hf.flush()
			hide(hd)
			show(sh)
		}
	}
	res, err := s.eng.Generate(ctx, p.ids[reused:], engine.GenerateOptions{MaxTokens: maxTokens, Sampler: smp, Stop: p.stopIDs},
		func(id int) error {
			ids = append(ids, id)
			piece, stopped := stop.push(dec.Push(id))
			emit(piece)
			if stopped {
				hitStop = true
				return errStop
			}
			s.opt.Tick()
			return nil
		})
	// The engine holds the prompt and the generated ids it fed back, in
	// order, whatever ended the generation.
	fed := append(slices.Clone(p.ids), ids...)
	if pos := s.eng.Pos(); pos <= len(fed) {
		s.cached = fed[:pos]
	} else {
		s.Reset()
	}
	s.last = res
	finish := res.StopReason
	switch {
	case hitStop:
		finish = "stop"
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		finish = "abort"
	case err != nil:
		return nil, &Error{CodeGenerateFailed, err}
	}
	if !hitStop {
		piece, _ := stop.push(dec.Flush())
		emit(piece + stop.flush())
	}
	flushHarmony()
	u := Usage{Prompt: len(p.ids), Completion: len(ids), Total: len(p.ids) + len(ids),
		PromptDetails: &PromptDetails{CachedTokens: reused}, PrefilledTokens: len(p.ids) - reused}
	note := strings.Join(notes, "; ")
	if r.Stream && chunk != nil {
		c := out.chunk("", &finish)
		c.Usage, c.DroppedMessages, c.Note, c.Seed = &u, p.dropped, note, seed
		chunk(c)
	}
	c := out.final(full.String(), finish, u)
	if chat {
		c.Choices[0].Message.ReasoningContent = reasoning.String()
	}
	c.DroppedMessages, c.Note, c.Seed = p.dropped, note, seed
	if r.ReturnTokenIDs {
		c.PromptTokenIDs = p.ids
		c.Choices[0].TokenIDs = ids
	}
	return c, nil
}

// tokenText is the text of token id, "" when there is none.
func tokenText(t tokenizer.Tokenizer, id int) string {
	if id < 0 {
		return ""
	}
	return t.Token(id)
}

func firstOr(ids []int, def int) int {
	if len(ids) == 0 {
		return def
	}
	return ids[0]
}
