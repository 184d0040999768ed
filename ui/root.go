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

	// LoadError is the error chain of the last "Load model" that failed,
	// shown folded under the model panel.
	LoadError   string
	LoadDetails bool

	Busy    bool // generating
	Loading bool // loading a model
	Startup Startup
	Stats   Stats
	Map     ExpertMap
	routes  RouteWindow

	// draftRev counts the changes Go made to Draft, so that the text area
	// is written only then (syncDraft).
	draftRev int
	log      logView

	engine    *Engine
	engineKey string
}

// Init restores the saved conversation and lists the packs.
func (c *Root) Init(ctx vugu.InitCtx) {
	c.env = ctx.EventEnv()
	c.store = NewStore(storageKey)
	saved := c.store.Load()
	c.Settings, c.Messages = saved.Settings, saved.Messages
	c.Draft, c.draftRev = c.store.LoadDraft(), 1
	c.log.force = true // open at the newest message
	for i := range c.Messages {
		// A reply cut short by the reload is kept as it was when saved.
		if c.Messages[i].Role == "assistant" && c.Messages[i].Finish == "" && c.Messages[i].Error == "" {
			c.Messages[i].Finish = "abort"
		}
	}
	c.Status = "Choose a model in Settings, or just type: the first message loads it."
	c.routes.Size = 8
	c.Map = BuildMap(Stats{}, nil)
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
		c.Status = Explain(err.Error())
	}
}

func (c *Root) saveDraft() {
	if err := c.store.SaveDraft(c.Draft); err != nil {
		c.Status = Explain(err.Error())
	}
}

// ToggleDetails opens or closes the details of message i's error. Like
// the settings, the state lives here: vugu drops the "open" attribute
// the browser sets on its own at the next render.
func (c *Root) ToggleDetails(i int) {
	if i >= 0 && i < len(c.Messages) {
		c.Messages[i].ShowDetails = !c.Messages[i].ShowDetails
	}
}

// MessageClass is the class list of message m in the log.
func MessageClass(m Message) string {
	cls := "msg " + m.Role
	if m.OutOfContext {
		cls += " out-of-context"
	}
	if m.Error != "" {
		cls += " failed"
	}
	return cls
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

// OnInput keeps Draft equal to the text area, and saved: a reload, or a
// page that stopped, must not lose what someone wrote or pasted.
func (c *Root) OnInput(e vugu.DOMEvent) {
	c.Draft = e.PropString("target", "value")
	c.saveDraft()
}

// Send adds the draft as a user message and generates a reply.
func (c *Root) Send() {
	if c.Busy || strings.TrimSpace(c.Draft) == "" {
		return
	}
	c.Messages = append(c.Messages, Message{Role: "user", Content: c.Draft})
	c.Draft = ""
	c.draftRev++
	c.log.force = true
	c.generate() // saves the conversation, with the message, first
	c.saveDraft()
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
			c.update(func() { c.Status = "Stop failed: " + Explain(err.Error()) })
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
				c.Status = "Could not copy: " + err.Error() // the browser's words are plain here
			} else {
				c.Status = "Copied to the clipboard."
			}
		})
	}()
}

// generate appends an empty assistant turn and fills it from the engine.
func (c *Root) generate() {
	msgs, at := history(c.Messages)
	c.Messages = append(c.Messages, Message{Role: "assistant"})
	c.Busy = true
	c.save()
	go c.run(msgs, at, len(c.Messages)-1, c.Settings)
}

// run loads the engine if needed and streams a reply into message i; at
// says where the messages sent are in c.Messages. No one else changes
// c.Messages while c.Busy is set, so the indices stay valid.
func (c *Root) run(msgs []Message, at []int, i int, s Settings) {
	e, err := c.ensureEngine(s)
	if err != nil {
		c.update(func() {
			c.Messages[i].Error = err.Error()
			c.Busy, c.Status = false, Explain(err.Error())
			c.save()
		})
		return
	}
	c.update(func() {
		c.Status = "Generating…"
		// A mixture of experts fetches the experts its first tokens route
		// to while it generates: until the first text, that is what the
		// answer waits for.
		if c.Startup.Stage == StageLoaded && c.Stats.ExpertsTotal > 0 {
			c.Startup.Stage, c.Startup.Stats = StageExperts, c.Startup.AtReady
		}
	})
	stop := c.poll(e, 300*time.Millisecond)
	// A small model streams hundreds of tokens a second: rendering each
	// one kept the page's thread so busy that a click on Stop waited
	// until the reply had ended. Text arriving within renderEvery of the
	// last render waits for the next one (or the final render below).
	var rendered time.Time
	r, err := e.Chat(msgs, s, func(d string) {
		c.env.Lock()
		c.Messages[i].Content += d
		c.Startup.Stage = StageIdle
		if time.Since(rendered) < renderEvery {
			c.env.UnlockOnly()
			return
		}
		rendered = time.Now()
		c.env.UnlockRender()
	})
	stop()
	died := workerDied(err)
	if died {
		// The worker is gone, and with it the model: forget the engine
		// and start a new one now, so that the next message finds it.
		c.update(func() { c.engine, c.engineKey = nil, "" })
		go func() {
			_, lerr := c.ensureEngine(s)
			c.update(func() {
				if lerr != nil {
					c.Status = "The engine stopped and could not be started again: " + Explain(lerr.Error())
				} else {
					c.Status = "The engine stopped unexpectedly and was started again: send your message again (or Regenerate)."
				}
			})
		}()
	} else {
		c.refresh(e)
	}
	c.update(func() {
		m := &c.Messages[i]
		m.Finish, m.Note, m.Dropped = r.Finish, r.Note, r.Dropped
		finish := r.Finish
		switch {
		case died:
			m.Error = err.Error()
			c.Status = "The engine stopped unexpectedly; starting it again…"
		case err != nil:
			m.Error = err.Error()
			c.Status = Explain(err.Error())
		case finish == "abort":
			c.Status = "Stopped."
		case finish == "length":
			c.Status = fmt.Sprintf("Stopped at the limit of %d tokens.", s.MaxTokens)
		default:
			c.Status = "Done."
		}
		if err == nil {
			markContext(c.Messages, at, r.Dropped)
		}
		if c.Startup.Stage == StageExperts {
			c.Startup.Stage = StageIdle // a reply without text, or an error
		}
		c.Busy = false
		c.save()
	})
}

// renderEvery is the shortest time between two renders of a streaming
// reply: 20 a second reads as smooth text.
const renderEvery = 50 * time.Millisecond

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
		return nil, fmt.Errorf("no model chosen: pick one or enter a manifest URL or hf:ORG/REPO in Settings")
	}
	if e != nil {
		e.Unload() // a failure leaves nothing to clean up that we could
	}
	c.update(func() {
		c.engine, c.Loading, c.Stats, c.LoadError = nil, true, Stats{}, ""
		c.Startup = Startup{Stage: StageManifest}
		c.routes.Reset()
		c.Map = BuildMap(Stats{}, nil)
		c.Status = "Loading " + s.Model + "…"
	})
	e, err := Load(s, func(p Progress) {
		c.update(func() {
			c.Startup.Load = p
			if p.Phase != "" && p.Phase != "manifest" {
				c.Startup.Stage = StageWeights
			}
		})
	})
	c.update(func() {
		c.Loading = false
		if err == nil {
			c.engine, c.engineKey = e, s.engineKey()
		}
	})
	if err != nil {
		c.update(func() { c.Startup = Startup{} })
		return nil, err
	}
	c.refresh(e)
	c.update(func() {
		c.Startup = Startup{Stage: StageLoaded, AtReady: c.Stats, ExpertBytes: e.ExpertBytes}
	})
	return e, nil
}

// refresh reads stats and redraws the map.
func (c *Root) refresh(e *Engine) {
	st, err := e.Stats()
	if err != nil {
		return // the next refresh will tell; a stats failure must not end a chat
	}
	c.update(func() {
		c.Stats = st
		if st.ExpertMap != nil {
			c.routes.Add(st.ExpertMap.LastRouted)
		}
		c.Map = BuildMap(st, &c.routes)
		if c.Startup.Stage == StageExperts {
			c.Startup.Stats = st
		}
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

// OnHFEndpoint sets the hub hf: models are read from.
func (c *Root) OnHFEndpoint(e vugu.DOMEvent) {
	c.Settings.HFEndpoint = strings.TrimSpace(e.PropString("target", "value"))
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

// OnBackend takes the backend setting; the next message loads the model
// again on it.
func (c *Root) OnBackend(e vugu.DOMEvent) {
	c.Settings.Backend = e.PropString("target", "value")
	c.save()
}

// BackendLine says what runs the model and why, once one is loaded.
func (c *Root) BackendLine() string {
	if c.engine == nil || c.engine.Backend == "" {
		return ""
	}
	line := "Running on " + map[string]string{"cpu": "the CPU", "webgpu": "WebGPU"}[c.engine.Backend]
	if c.engine.BackendNote != "" {
		line += ": " + c.engine.BackendNote
	}
	return line
}

// LoadNote is what the worker said went differently from what the pack
// asked for, for people: a chat template that does not parse and was
// replaced by a guessed format. "" when nothing did.
func (c *Root) LoadNote() string {
	if c.engine == nil || c.engine.ChatTemplateNote == "" {
		return ""
	}
	return "Note: " + c.engine.ChatTemplateNote + "."
}

// BackendNote is the backend note alone (hover text).
func (c *Root) BackendNote() string {
	if c.engine == nil {
		return ""
	}
	return c.engine.BackendNote
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
				c.Status = Explain(err.Error())
				c.LoadError = err.Error()
			} else {
				c.Status = "Model loaded."
			}
		})
	}()
}

// Template helpers.

func (c *Root) PackSelected(p Pack) bool { return p.Manifest == c.Settings.Model }

func (c *Root) ShowProgress() bool { return c.Startup.Visible() }

func (c *Root) Num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func RoleName(m Message) string {
	if m.Role == "user" {
		return "You"
	}
	return "Model"
}
