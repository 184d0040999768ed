package ui

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// An error reaches the page as a Go error chain, written for whoever
// debugs the runtime: `loading /packs/x/manifest.json: reading manifest …:
// GET http://…: net/http: fetch() failed: TypeError: Failed to fetch (gave
// up after 5 attempts)`. People get one sentence saying what happened and
// what to do; the chain stays underneath, folded, for a bug report.

// explanation maps errors that contain a pattern to a sentence. The
// first that matches wins, so the specific come before the general.
type explanation struct {
	match    *regexp.Regexp
	sentence func(m []string) string // m: the match and its groups
}

func fixed(s string) func([]string) string { return func([]string) string { return s } }

var explanations = []explanation{
	{regexp.MustCompile(`no model chosen`),
		fixed("Choose a model in Settings first, or enter a model URL there.")},
	{regexp.MustCompile(`mode\.js is not loaded`),
		fixed("The page could not start its engine (mode.js); reload the page.")},
	{regexp.MustCompile(`(?:are|is) (\d+) tokens; the context holds (\d+)`),
		func(m []string) string {
			return fmt.Sprintf("The message is too long for this model: it is %s tokens and the model reads at most %s; shorten it.", m[1], m[2])
		}},
	{regexp.MustCompile(`reading manifest \S+: GET \S+: file missing[^(]*\((?:404|410)\b`),
		fixed("No model at that address (404).")},
	{regexp.MustCompile(`\((?:404|410)\b`),
		fixed("A file of this model is missing on the server (404): the pack is incomplete or being replaced.")},
	{regexp.MustCompile(`: (40[13]) `),
		func(m []string) string {
			return fmt.Sprintf("The server refused to hand out the model (HTTP %s).", m[1])
		}},
	{regexp.MustCompile(`: (5\d\d) [A-Z]`),
		func(m []string) string {
			return fmt.Sprintf("The model server failed (HTTP %s); try again later.", m[1])
		}},
	{regexp.MustCompile(`(?i)failed to fetch|fetch\(\) failed|networkerror|connection refused|connection reset|body cut at byte|could not start the worker|server may be unreachable`),
		fixed("The model server stopped answering; check the connection and try again.")},
	{regexp.MustCompile(`sha256 mismatch`),
		fixed("A downloaded part of the model was damaged (its checksum did not match); try again.")},
	{regexp.MustCompile(`manifest: (?:invalid character|unexpected|trailing data|format)|manifest: json:`),
		fixed("That address does not hold a mode model: its manifest.json could not be read.")},
	{regexp.MustCompile(`backend "webgpu" is unavailable`),
		fixed("WebGPU is not available in this browser; choose auto or CPU as the backend in Settings.")},
	{regexp.MustCompile(`(?i)quota|saving the (?:conversation|draft)`),
		fixed("The browser's storage for this page is full, so the conversation could not be saved; clear it or free some space.")},
	{regexp.MustCompile(`was unloaded|no model is loaded`),
		fixed("The model was unloaded; send the message again to load it.")},
	{regexp.MustCompile(`is loading already`),
		fixed("A model is loading already; wait for it to finish.")},
}

// Explain turns an error chain into one sentence for people.
func Explain(err string) string {
	if strings.TrimSpace(err) == "" {
		return ""
	}
	for _, e := range explanations {
		if m := e.match.FindStringSubmatch(err); m != nil {
			return e.sentence(m)
		}
	}
	return "Something went wrong; the details are below."
}

// ModeError is a rejection from mode.js that carries its error code.
type ModeError struct {
	Code, Message string
}

func (e *ModeError) Error() string { return e.Message }

// workerDied reports whether err says the engine's worker has stopped
// (code worker_failed): the engine is gone and a new one must be made.
func workerDied(err error) bool {
	var me *ModeError
	return errors.As(err, &me) && me.Code == "worker_failed"
}
