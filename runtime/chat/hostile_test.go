package chat

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moderuntime/mode/internal/cputime"
)

// TestHostileTemplates: templates that recursed forever, overflowed the
// stack or grew without bound now stop with an error saying why, quickly.
func TestHostileTemplates(t *testing.T) {
	deep := func(open, mid, close string, n int) string {
		return strings.Repeat(open, n) + mid + strings.Repeat(close, n)
	}
	tests := []struct {
		name, src, want string
	}{
		{"namespace printing itself", `{%set ns=namespace(a=1)%}{%set ns.a=ns%}{{ns.a}}`, "nested deeper than 128 levels"},
		{"namespace to JSON", `{%set ns=namespace(a=1)%}{%set ns.a=ns%}{{ns|tojson}}`, "tojson: value nested deeper"},
		{"namespace as string", `{%set ns=namespace(a=1)%}{%set ns.a=ns%}{{ns|string}}`, "string: value nested deeper"},
		{"namespace joined", `{%set ns=namespace(a=1)%}{%set ns.a=ns%}{{[ns]|join(',')}}`, "join: value nested deeper"},
		{"namespace concatenated", `{%set ns=namespace(a=1)%}{%set ns.a=ns%}{{'x' ~ ns}}`, "value nested deeper"},
		{"cycles compared", `{%set a=namespace(x=1)%}{%set a.x=a%}{%set b=namespace(x=1)%}{%set b.x=b%}{{a==b}}`, "value nested deeper"},
		{"cycles compared by a test", `{%set a=namespace(x=1)%}{%set a.x=a%}{%set b=namespace(x=1)%}{%set b.x=b%}{{a is eq(b)}}`, "value nested deeper"},
		{"cycle searched", `{%set a=namespace(x=1)%}{%set a.x=a%}{%set b=namespace(x=1)%}{%set b.x=b%}{{b in [a]}}`, "value nested deeper"},
		{"list wrapped in a loop", `{%set ns=namespace(x=[])%}{%for i in range(100000)%}{%set ns.x=[ns.x]%}{%endfor%}{{ns.x}}`, "nested deeper than 128"},
		{"list doubled in a loop", `{%set ns=namespace(x=[1])%}{%for i in range(60)%}{%set ns.x=[ns.x,ns.x]%}{%endfor%}{{ns.x}}`, "exceeds 33554432 bytes"},
		{"indented JSON of a wide value", `{%set ns=namespace(x=[1])%}{%for i in range(60)%}{%set ns.x=[ns.x,ns.x]%}{%endfor%}{{ns.x|tojson(indent=100000)}}`, "exceeds 33554432 bytes"},
		{"macro recursion", `{%macro f()%}{{f()}}{%endmacro%}{{f()}}`, "macro calls nested deeper than 64"},
		{"parentheses", "{{" + deep("(", "1", ")", 1<<20) + "}}", "nested deeper than 100"},
		{"lists", "{{" + deep("[", "1", "]", 1<<16) + "}}", "nested deeper than 100"},
		{"nots", "{{" + strings.Repeat("not ", 1<<16) + "1}}", "nested deeper than 100"},
		{"minuses", "{{" + strings.Repeat("-", 1<<16) + "1}}", "nested deeper than 100"},
		{"conditionals", "{{" + strings.Repeat("1 if 1 else ", 1<<16) + "1}}", "nested deeper than 100"},
		{"ifs", deep("{%if 1%}", "x", "{%endif%}", 1<<16), "nested deeper than 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := cputime.Now()
			out, err := render(t, tt.src, nil, nil)
			if d := cputime.Now() - start; d > cputime.Budget(10*time.Second) {
				t.Errorf("took %v of CPU time", d)
			}
			var e *Error
			if err == nil || !errors.As(err, &e) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("output %.40q, error %v, want a *Error containing %q", out, err, tt.want)
			}
		})
	}
}

// TestNestingWithinBounds: real templates nest far less than the bounds;
// values nested to the bound still print.
func TestNestingWithinBounds(t *testing.T) {
	src := "{{" + strings.Repeat("[", 90) + "1" + strings.Repeat("]", 90) + "}}"
	out, err := render(t, src, nil, nil)
	if want := strings.Repeat("[", 90) + "1" + strings.Repeat("]", 90); err != nil || out != want {
		t.Fatalf("got %q, %v", out, err)
	}
	src = `{%set ns=namespace(x=1)%}{%for i in range(120)%}{%set ns.x=[ns.x]%}{%endfor%}{{ns.x|tojson}}`
	out, err = render(t, src, nil, nil)
	if want := strings.Repeat("[", 120) + "1" + strings.Repeat("]", 120); err != nil || out != want {
		t.Fatalf("got %q, %v", out, err)
	}
}

// FuzzRender renders templates over fuzzed message content and variables:
// whatever the input, rendering ends (the fuzzer's per-input timeout
// catches a hang) with output within the bound or a located *Error.
func FuzzRender(f *testing.F) {
	for _, s := range []string{
		chatML, mistral, constructs,
		`{%set ns=namespace(a=1)%}{%set ns.a=ns%}{{ns.a}}`,
		`{%set ns=namespace(x=[1])%}{%for m in messages%}{%set ns.x=[ns.x,ns.x]%}{%endfor%}{{ns.x|tojson(indent=2)}}`,
		`{%macro f(n)%}{{n}}{{f(n ~ n)}}{%endmacro%}{{f(messages[0].content)}}`,
		`{{ messages | map(attribute='content') | join(bos_token) }}{{ tools | tojson }}`,
	} {
		f.Add(s, "hello", "<s>")
	}
	f.Fuzz(func(t *testing.T, src, content, bos string) {
		tp, err := Parse(src)
		if err != nil {
			return
		}
		msgs := []Message{{"system", content}, {"user", content + content}, {"assistant", bos}}
		out, err := tp.Render(msgs, map[string]any{"add_generation_prompt": true, "bos_token": bos,
			"tools": []any{map[string]any{"name": content, "args": []any{bos, 1, 2.5}}}})
		if err != nil {
			var e *Error
			var lc *loopSignal
			if !errors.As(err, &e) && !errors.As(err, &lc) {
				t.Fatalf("render error of type %T: %v", err, err)
			}
			return
		}
		if len(out) > maxOutput {
			t.Fatalf("%d bytes of output, more than the %d bound", len(out), maxOutput)
		}
	})
}
