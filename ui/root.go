package ui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vugu/vugu"
)

// storageKey is where the conversation and settings live in localStorage.
const storageKey = "mode.chat.v1"

// Root is the chat page. Its fields are read by the template; they change
// only with the event environment locked (event handlers run locked;
// goroutines use c.update).
type Root struct {
	env   vugu.EventEnv
	store *Store

	Settings Settings
	Packs    []Pack
	Messages []Message
	Draft    string
	Status   string

	// SettingsOpen drives the <details> element: vugu resets attributes
	// it does not know about on every render, so the summary's click
	// toggles this instead of letting the browser toggle "open".
	SettingsOpen bool

	Busy     bool // generating
	Loading  bool // loading a model
	Progress Progress
	Stats    Stats
	Map      ExpertMap

	engine    *Engine
	engineKey string
	layout    Layout
	cached    map[string]bool
}

// Init restores the saved conversation and lists the packs.
func (c *Root) Init(ctx vugu.InitCtx) {
	c.env = ctx.EventEnv()
	c.store = NewStore(storageKey)
	saved := c.store.Load()
	c.Settings, c.Messages = saved.Settings, saved.Messages
	for i := range c.Messages {
		// A reply cut short by the reload is kept as it was when saved.
		if c.Messages[i].Role == "assistant" && c.Messages[i].Finish == "" && c.Messages[i].Error == "" {
			c.Messages[i].Finish = "abort"
		}
	}
	c.Status = "Choose a model in Settings, or just type: the first message loads it."
	c.Map = BuildMap(Layout{}, nil, Stats{})
	go c.listPacks()
}

// update runs f with the event environment locked and re-renders.
func (c *Root) update(f func()) {
	c.env.Lock()
	defer c.env.UnlockRender()
	f()
}

func (c *Root) listPacks() {
	ps, err := ListPacks("/packs/")
	c.update(func() {
		if err != nil {
			c.Status = "No pack list on this server: enter a model URL in Settings."
			return
		}
		c.Packs = ps
		if c.Settings.Model == "" && len(ps) > 0 {
			c.Settings.Model = ps[0].Manifest
		}
	})
}

func (c *Root) save() {
	if err := c.store.Save(Saved{Settings: c.Settings, Messages: c.Messages}); err != nil {
		c.Status = err.Error()
	}
}

// OnKey sends on Enter; Shift+Enter (and Enter while composing text with
// an input method) inserts a newline as usual.
func (c *Root) OnKey(e vugu.DOMEvent) {
	if e.PropString("key") != "Enter" || e.PropBool("shiftKey") || e.PropBool("isComposing") {
		return
	}
	e.PreventDefault()
	c.Draft = e.PropString("target", "value")
	c.Send()
}

// OnInput keeps Draft equal to the text area, so that clearing Draft
// clears it.
func (c *Root) OnInput(e vugu.DOMEvent) { c.Draft = e.PropString("target", "value") }

// Send adds the draft as a user message and generates a reply.
func (c *Root) Send() {
	if c.Busy || strings.TrimSpace(c.Draft) == "" {
		return
	}
	c.Messages = append(c.Messages, Message{Role: "user", Content: c.Draft})
	c.Draft = ""
	c.generate()
}

// Regenerate replaces the last reply with a new one.
func (c *Root) Regenerate() {
	if c.Busy {
		return
	}
	n := len(c.Messages)
	if n > 0 && c.Messages[n-1].Role == "assistant" {
		c.Messages = c.Messages[:n-1]
	}
	if len(c.Messages) == 0 {
		return
	}
	c.generate()
}

// CanRegenerate says whether there is a user turn to answer again.
func (c *Root) CanRegenerate() bool {
	for _, m := range c.Messages {
		if m.Role == "user" {
			return !c.Busy
		}
	}
	return false
}

// Clear forgets the conversation.
func (c *Root) Clear() {
	if c.Busy {
		return
	}
	c.Messages = nil
	c.Status = "Conversation cleared."
	c.save()
}

// Stop interrupts the generation; the reply keeps what it has.
func (c *Root) Stop() {
	if !c.Busy || c.engine == nil {
		return
	}
	e := c.engine
	c.Status = "Stopping…"
	go func() {
		if err := e.Interrupt(); err != nil {
			c.update(func() { c.Status = "Stop failed: " + err.Error() })
		}
	}()
}

// Copy puts message i on the clipboard.
func (c *Root) Copy(i int) {
	if i < 0 || i >= len(c.Messages) {
		return
	}
	text := c.Messages[i].Content
	go func() {
		err := CopyText(text)
		c.update(func() {
			if err != nil {
				c.Status = "Could not copy: " + err.Error()
			} else {
				c.Status = "Copied to the clipboard."
			}
		})
	}()
}

// generate appends an empty assistant turn and fills it from the engine.
func (c *Root) generate() {
	msgs := history(c.Messages)
	c.Messages = append(c.Messages, Message{Role: "assistant"})
	c.Busy = true
	c.save()
	go c.run(msgs, len(c.Messages)-1, c.Settings)
}

// run loads the engine if needed and streams a reply into message i. No
// one else changes c.Messages while c.Busy is set, so i stays valid.
func (c *Root) run(msgs []Message, i int, s Settings) {
	e, err := c.ensureEngine(s)
	if err != nil {
		c.update(func() {
			c.Messages[i].Error = err.Error()
			c.Busy, c.Status = false, err.Error()
			c.save()
		})
		return
	}
	c.update(func() { c.Status = "Generating…" })
	stop := c.poll(e, 300*time.Millisecond)
	finish, err := e.Chat(msgs, s, func(d string) {
		c.update(func() { c.Messages[i].Content += d })
	})
	stop()
	c.refresh(e)
	c.update(func() {
		m := &c.Messages[i]
		m.Finish = finish
		switch {
		case err != nil:
			m.Error = err.Error()
			c.Status = "Generation failed: " + err.Error()
		case finish == "abort":
			c.Status = "Stopped."
		case finish == "length":
			c.Status = fmt.Sprintf("Stopped at the limit of %d tokens.", s.MaxTokens)
		default:
			c.Status = "Done."
		}
		c.Busy = false
		c.save()
	})
}

// ensureEngine returns the engine s calls for, loading it (and unloading
// the previous one) when the model, budget or cache setting changed.
func (c *Root) ensureEngine(s Settings) (*Engine, error) {
	c.env.Lock()
	e, key := c.engine, c.engineKey
	c.env.UnlockOnly()
	if e != nil && key == s.engineKey() {
		return e, nil
	}
	if s.Model == "" {
		return nil, fmt.Errorf("no model chosen: pick one or enter a manifest URL in Settings")
	}
	if e != nil {
		e.Unload() // a failure leaves nothing to clean up that we could
	}
	c.update(func() {
		c.engine, c.Loading, c.Progress, c.Stats = nil, true, Progress{}, Stats{}
		c.Status = "Loading " + s.Model + "…"
	})
	e, err := Load(s, func(p Progress) { c.update(func() { c.Progress = p }) })
	layout, lerr := FetchLayout(s.Model)
	c.update(func() {
		c.Loading = false
		if err == nil {
			c.engine, c.engineKey = e, s.engineKey()
		}
		if lerr == nil {
			c.layout = layout
		} else {
			c.layout = Layout{}
		}
	})
	if err != nil {
		return nil, err
	}
	c.refresh(e)
	return e, nil
}

// refresh reads stats and the cache and redraws the map.
func (c *Root) refresh(e *Engine) {
	st, err := e.Stats()
	if err != nil {
		return // the next refresh will tell; a stats failure must not end a chat
	}
	cached, _ := CachedHashes()
	c.update(func() {
		c.Stats = st
		c.cached = cached
		c.Map = BuildMap(c.layout, c.cached, st)
	})
}

// poll refreshes every d until the returned function is called.
func (c *Root) poll(e *Engine, d time.Duration) func() {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c.refresh(e)
			}
		}
	}()
	return func() { close(done); <-finished }
}

// Settings handlers: each reads the control's value and saves.

func (c *Root) OnPick(e vugu.DOMEvent) {
	if v := e.PropString("target", "value"); v != "" {
		c.Settings.Model = v
		c.save()
	}
}

func (c *Root) OnModelURL(e vugu.DOMEvent) {
	c.Settings.Model = strings.TrimSpace(e.PropString("target", "value"))
	c.save()
}

func (c *Root) OnNumber(e vugu.DOMEvent, field string) {
	v, err := strconv.ParseFloat(e.PropString("target", "value"), 64)
	if err != nil || v < 0 {
		c.Status = fmt.Sprintf("%s must be a number of 0 or more", field)
		return
	}
	switch field {
	case "temperature":
		c.Settings.Temperature = v
	case "top-p":
		c.Settings.TopP = min(v, 1)
	case "max tokens":
		c.Settings.MaxTokens = max(1, int(v))
	case "expert budget":
		c.Settings.ExpertBudgetMB = v
	}
	c.save()
}

func (c *Root) OnCache(e vugu.DOMEvent) {
	c.Settings.Cache = e.PropBool("target", "checked")
	c.save()
}

// LoadNow loads the model chosen in Settings without sending anything.
func (c *Root) LoadNow() {
	if c.Busy || c.Loading {
		return
	}
	s := c.Settings
	c.Busy = true
	go func() {
		_, err := c.ensureEngine(s)
		c.update(func() {
			c.Busy = false
			if err != nil {
				c.Status = err.Error()
			} else {
				c.Status = "Model loaded."
			}
		})
	}()
}

// Template helpers.

func (c *Root) PackSelected(p Pack) bool { return p.Manifest == c.Settings.Model }

func (c *Root) ShowProgress() bool {
	return c.Loading || (c.Progress.Phase != "" && c.Progress.Phase != "ready")
}

func (c *Root) Num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func RoleName(m Message) string {
	if m.Role == "user" {
		return "You"
	}
	return "Model"
}

// Note is the small print under an assistant turn.
func Note(m Message) string {
	switch {
	case m.Error != "":
		return "error: " + m.Error
	case m.Finish == "abort":
		return "stopped"
	case m.Finish == "length":
		return "cut at max tokens"
	}
	return ""
}
