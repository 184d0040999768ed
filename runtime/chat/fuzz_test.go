package chat

import (
	"testing"
)

// FuzzParse checks that parsing and rendering arbitrary templates never
// panics and always terminates within the render limits.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		chatML, mistral, constructs,
		"{% for m in messages[::-1] %}{{ loop.index }}{% endfor %}",
		"{{ {'a': [1, 2]} | tojson(indent=2) }}{{ x.y['z'][1:-1] }}",
		"{% set ns = namespace(a=1) %}{% set ns.a = ns.a ~ 'x' %}{{ ns.a }}",
		"{%- if a is not defined -%}{{- raise_exception('e') -}}{%- endif -%}",
	} {
		f.Add(s)
	}
	msgs := []Message{{"system", "s"}, {"user", "u <think>x</think>"}, {"assistant", "a"}}
	f.Fuzz(func(t *testing.T, src string) {
		tp, err := Parse(src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("parse error of type %T: %v", err, err)
			}
			return
		}
		_, _ = tp.Render(msgs, map[string]any{"add_generation_prompt": true, "bos_token": "<s>"})
	})
}
