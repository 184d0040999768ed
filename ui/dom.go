package ui

import (
	"github.com/vugu/vugu/js"
)

// vugu sends a render to the page as instructions in a fixed 16 KiB
// buffer (domrender), and one instruction cannot span two buffers: a
// property or text longer than that fails the whole render ("requested
// instruction does not fit in the buffer"). Text that people paste or a
// model writes has no such bound, so it never goes through the template:
// the template hands these functions the element (vg-js-create, called on
// every render) and they set the text directly, and only when it changed.

// setText makes el's text s. The key of the text last set is kept on the
// element, so an unchanged message costs a hash, not a copy into JS.
func setText(el js.Value, s string) {
	k := textKey(s)
	if v := el.Get("modeTextKey"); v.Type() == js.TypeString && v.String() == k {
		return
	}
	el.Set("textContent", s)
	el.Set("modeTextKey", k)
}

// syncDraft puts Draft into the text area when Go changed it (restored on
// start, cleared on send); typing changes the text area first and Draft
// follows it (OnInput), so it must not be written back then, which would
// also move the caret.
func (c *Root) syncDraft(el js.Value) {
	if v := el.Get("modeDraftRev"); v.Type() == js.TypeNumber && v.Int() == c.draftRev {
		return
	}
	el.Set("value", c.Draft)
	el.Set("modeDraftRev", c.draftRev)
}

// logView remembers, between the start and the end of a render of the
// conversation, whether it should stay scrolled to the newest message.
type logView struct {
	follow bool
	force  bool // the person just sent something: show it whatever the position
}

// before runs before the log's children are rendered (vg-js-create).
func (v *logView) before(el js.Value) {
	v.follow = v.force || scrollOf(el).AtBottom()
	v.force = false
}

// after runs once they are (vg-js-populate).
func (v *logView) after(el js.Value) {
	if v.follow {
		el.Set("scrollTop", el.Get("scrollHeight").Float())
	}
}

func scrollOf(el js.Value) Scroll {
	return Scroll{Top: el.Get("scrollTop").Float(), Height: el.Get("scrollHeight").Float(), Client: el.Get("clientHeight").Float()}
}
