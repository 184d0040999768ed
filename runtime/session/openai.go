package session

import (
	"encoding/json"
	"strconv"
	"time"
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	// ReasoningContent is a harmony (gpt-oss) reply's analysis and
	// commentary channels, which Content leaves out; it is not sent back
	// to the model (its template drops past reasoning too).
	ReasoningContent string `json:"reasoning_content,omitempty"`
}

// Request holds the parameters of chat.completions.create and
// completions.create, with OpenAI's names. Pointers tell "absent" from 0.
type Request struct {
	Messages    []Message `json:"messages"` // chat
	Prompt      *string   `json:"prompt"`   // completion
	Stream      bool      `json:"stream"`
	Temperature *float64  `json:"temperature"` // absent: 1
	TopP        *float64  `json:"top_p"`
	MaxTokens   int       `json:"max_tokens"` // 0: as many as the context holds
	Seed        *uint64   `json:"seed"`       // absent: drawn by the session
	Stop        StopList  `json:"stop"`
	// ReturnTokenIDs adds prompt_token_ids and token_ids to the result
	// (as vLLM does), for tests that compare against a reference.
	ReturnTokenIDs bool `json:"return_token_ids"`
}

// StopList is OpenAI's stop: a string or a list of strings.
type StopList []string

func (s *StopList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = StopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// Usage counts a request's tokens. Of the prompt's tokens, CachedTokens
// were already in the KV cache and PrefilledTokens were computed.
type Usage struct {
	Prompt          int            `json:"prompt_tokens"`
	Completion      int            `json:"completion_tokens"`
	Total           int            `json:"total_tokens"`
	PromptDetails   *PromptDetails `json:"prompt_tokens_details,omitempty"`
	PrefilledTokens int            `json:"prefilled_tokens"`
}

// PromptDetails is OpenAI's breakdown of the prompt tokens.
type PromptDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

// Choice is one choice of a response or chunk.
type Choice struct {
	Index        int       `json:"index"`
	Message      *Message  `json:"message,omitempty"` // chat
	Delta        *Delta    `json:"delta,omitempty"`   // chat chunk
	Text         *string   `json:"text,omitempty"`    // completion (and its chunks)
	FinishReason *string   `json:"finish_reason"`     // stop, length, abort; null in a chunk mid-stream
	TokenIDs     []int     `json:"token_ids,omitempty"`
	Logprobs     *struct{} `json:"logprobs"`
}

// Delta is a chat chunk's piece of the reply.
type Delta struct {
	Role             string `json:"role,omitempty"`
	Content          string `json:"content,omitempty"`
	ReasoningContent string `json:"reasoning_content,omitempty"`
}

// Completion is a response (chat.completion, text_completion) or a
// streamed chunk of one (chat.completion.chunk). The final chunk, the one
// with a finish reason, carries Usage, DroppedMessages and Note too.
type Completion struct {
	ID             string   `json:"id"`
	Object         string   `json:"object"`
	Created        int64    `json:"created"`
	Model          string   `json:"model"`
	Choices        []Choice `json:"choices"`
	Usage          *Usage   `json:"usage,omitempty"`
	PromptTokenIDs []int    `json:"prompt_token_ids,omitempty"`
	// DroppedMessages counts the oldest messages left out so the
	// conversation fits the context.
	DroppedMessages int `json:"dropped_messages,omitempty"`
	// Note says, for a person, what was changed to serve the request
	// (messages left out, max_tokens clamped).
	Note string `json:"note,omitempty"`
	// Seed is the sampling seed used, so a reply can be reproduced; absent
	// for greedy decoding.
	Seed *uint64 `json:"seed,omitempty"`
}

// response builds the objects of one generation.
type response struct {
	chat    bool
	id      string
	model   string
	created int64
	first   bool
}

func newResponse(chat bool, model string) *response {
	now := time.Now()
	prefix := "cmpl-"
	if chat {
		prefix = "chatcmpl-"
	}
	return &response{chat: chat, id: prefix + strconv.FormatInt(now.UnixNano(), 36), model: model, created: now.Unix(), first: true}
}

func (r *response) chunk(text string, finish *string) *Completion {
	c := Choice{FinishReason: finish}
	obj := "text_completion"
	if r.chat {
		obj = "chat.completion.chunk"
		c.Delta = &Delta{Content: text}
		if r.first {
			c.Delta.Role = "assistant"
		}
	} else {
		c.Text = &text
	}
	r.first = false
	return &Completion{ID: r.id, Object: obj, Created: r.created, Model: r.model, Choices: []Choice{c}}
}

// reasoning is a chat chunk of hidden harmony text.
func (r *response) reasoning(text string) *Completion {
	c := r.chunk("", nil)
	c.Choices[0].Delta.ReasoningContent = text
	return c
}

func (r *response) final(text, finish string, u Usage) *Completion {
	c := Choice{FinishReason: &finish}
	obj := "text_completion"
	if r.chat {
		obj = "chat.completion"
		c.Message = &Message{Role: "assistant", Content: text}
	} else {
		c.Text = &text
	}
	return &Completion{ID: r.id, Object: obj, Created: r.created, Model: r.model, Choices: []Choice{c}, Usage: &u}
}
