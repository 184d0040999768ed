package tokenizer

import (
	"encoding/json"
	"fmt"
)

// applyConfig reads BOS, EOS, add_bos_token and the chat template from
// tokenizer_config.json.
func (h *HF) applyConfig(data []byte) error {
	var c struct {
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
		AddBOS       *bool           `json:"add_bos_token"`
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	bos, ok, err := h.configToken(c.BOS)
	if err != nil {
		return fmt.Errorf("bos_token: %w", err)
	}
	if ok {
		h.bos = bos
	}
	eos, ok, err := h.configToken(c.EOS)
	if err != nil {
		return fmt.Errorf("eos_token: %w", err)
	}
	if ok {
		h.eos = []int{eos}
	}
	if c.AddBOS != nil {
		h.addsBOS = *c.AddBOS
	}
	var tmpl string
	if json.Unmarshal(c.ChatTemplate, &tmpl) == nil {
		h.chatTmpl = tmpl // a list of named templates is not a string: left ""
	}
	return nil
}

// configToken resolves a token given as a string or as an AddedToken object
// {"content": ...}. A missing or null value is not an error.
func (h *HF) configToken(raw json.RawMessage) (int, bool, error) {
	if isNull(raw) {
		return 0, false, nil
	}
	var content string
	if err := json.Unmarshal(raw, &content); err != nil {
		var obj struct {
			Content *string `json:"content"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
			return 0, false, fmt.Errorf("want a string or an object with \"content\", got %.40s", raw)
		}
		content = *obj.Content
	}
	id, ok := h.TokenID(content)
	if !ok {
		return 0, false, fmt.Errorf("%q is not in the vocabulary", content)
	}
	return id, true, nil
}

// templateAddsPrefix reports whether a post_processor puts a special token
// before the sequence: a TemplateProcessing whose "single" template starts
// with a SpecialToken, Bert/Roberta processing, or a Sequence holding one.
func templateAddsPrefix(raw json.RawMessage, depth int) (bool, error) {
	if isNull(raw) {
		return false, nil
	}
	if depth > maxConfigDepth {
		return false, fmt.Errorf("processors nested deeper than %d", maxConfigDepth)
	}
	var c struct {
		Type       string            `json:"type"`
		Processors []json.RawMessage `json:"processors"`
		Single     []json.RawMessage `json:"single"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return false, err
	}
	switch c.Type {
	case "TemplateProcessing":
		if len(c.Single) == 0 {
			return false, nil
		}
		var item struct {
			SpecialToken json.RawMessage `json:"SpecialToken"`
		}
		if err := json.Unmarshal(c.Single[0], &item); err != nil {
			// Templates may also be written as strings such as "<s> $A".
			var s string
			if json.Unmarshal(c.Single[0], &s) == nil {
				return len(s) > 0 && s[0] != '$', nil
			}
			return false, fmt.Errorf("TemplateProcessing single[0]: %w", err)
		}
		return !isNull(item.SpecialToken), nil
	case "BertProcessing", "RobertaProcessing":
		return true, nil
	case "Sequence":
		for i, p := range c.Processors {
			adds, err := templateAddsPrefix(p, depth+1)
			if err != nil {
				return false, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if adds {
				return true, nil
			}
		}
	}
	return false, nil
}
