// Package session runs OpenAI-shaped chat and completion requests against
// one engine: it validates a request, renders a conversation with the
// model's chat template (runtime/chat, or a recognised family's fixed
// format), adds BOS and the stop rules, streams the reply through stop
// strings, and builds the response and chunk objects. The browser worker
// (cmd/wasm) and `mode chat` (cmd/mode, native and wasip1) both serve
// requests through it.
//
// # KV reuse
//
// A Session remembers the token ids whose keys and values are in the
// engine's KV cache. A request is rendered to ids in full, as if the cache
// were empty; the session then keeps the cache of the longest common prefix
// of those ids with the cached ones (engine.Truncate) and prefills only the
// rest. The next turn of a conversation so prefills only its new message,
// and a regenerated or edited last message reuses everything before it.
// The previous reply's sampled tokens are in the cache too, and are reused
// as far as the next rendering of that reply tokenizes to the same ids.
// Usage reports the reused ids as prompt_tokens_details.cached_tokens and
// the rest as prefilled_tokens.
//
// # Overflow
//
// A chat request reserves room for the reply: max_tokens, at most half the
// context (absent max_tokens reserves half). When the rendered prompt and
// that room pass the context, the oldest turns are left out — whole turns
// from a user message on, never the leading system messages, always the
// last user message and what follows it — and max_tokens is clamped to the
// context left. The response says so in dropped_messages and note. When
// the system messages and the last user message alone fill the context,
// the request fails with a bad_request error asking to shorten the
// message: cutting a message's text is the caller's decision, not ours.
// A completion prompt is never cut: it must fit.
//
// # Harmony
//
// gpt-oss's template (recognised by its <|channel|> marker) asks for
// replies in the harmony format: an analysis channel, then the final
// channel, ended by <|return|> (or <|call|> for a tool call), which are
// the format's stops; <|end|> between messages is not. The session shows
// only the final channel's text as the reply's content: the analysis and
// commentary channels are hidden from it (not folded into it) and
// returned as reasoning_content, streamed as reasoning deltas, so a page
// can offer them on request. `mode chat` and the browser print content
// only. Past replies go back into the template as their final text, as
// gpt-oss's template drops past reasoning anyway.
//
// # Seeds
//
// A request without a seed samples with the session's base seed plus a
// multiple of a per-session counter, so a regenerated reply differs from
// the first while a fresh session given the same base seed repeats itself.
//
// A Session drives its engine alone and is not safe for concurrent use.
package session
