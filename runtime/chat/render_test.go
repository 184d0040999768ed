package chat

import (
	"strings"
	"testing"
	"time"
)

func render(t *testing.T, src string, msgs []Message, vars map[string]any) (string, error) {
	t.Helper()
	tp, err := Parse(src)
	if err != nil {
		return "", err
	}
	return tp.Render(msgs, vars)
}

func TestRender(t *testing.T) {
	msgs := []Message{{"system", "S"}, {"user", "U1"}, {"assistant", "A1"}, {"user", "U2"}}
	tests := []struct {
		name, src, want string
		vars            map[string]any
	}{
		{"text", "plain", "plain", nil},
		{"output", "{{ 'a' }}{{ \"b\" }}", "ab", nil},
		{"comment", "a{# note #}b", "ab", nil},
		{"string escapes", `{{ 'x\ny\t\'q\'\\' }}`, "x\ny\t'q'\\", nil},
		{"ints floats", "{{ 1 + 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ 1.0 }}", "3 3.5 3 -4 1 1024 1.0", nil},
		{"concat", "{{ 'a' ~ 1 ~ true }}|{{ 'a' + 1 }}", "a1true|a1", nil},
		{"literals", "{{ true }} {{ False }} {{ none }}{{ None }} {{ [1, 'a'] }} {{ {'k': 'v'} }}", `true false  [1, "a"] {"k": "v"}`, nil},
		{"comparisons", "{{ 1 < 2 }}{{ 2 <= 1 }}{{ 'a' == 'a' }}{{ 1 != 1.0 }}{{ 'b' > 'a' }}", "truefalsetruefalsetrue", nil},
		{"logic", "{{ true and 'x' }}{{ none or 'y' }}{{ not 0 }}", "xytrue", nil},
		{"in", "{{ 'a' in 'cat' }}{{ 3 not in [1, 2] }}{{ 'k' in {'k': 1} }}", "truetruetrue", nil},
		{"tests", "{{ x is defined }}{{ none is none }}{{ 'a' is string }}{{ 1.5 is number }}{{ [1] is sequence }}{{ {} is mapping }}{{ true is true }}{{ 0 is false }}{{ x is not defined }}", "falsetruetruetruetruetruetruefalsetrue", nil},
		{"undefined", "[{{ missing }}][{{ missing.attr.deeper }}][{{ missing['k'] }}]{% if missing %}no{% endif %}", "[][][]", nil},
		{"attribute and index", "{{ messages[0].role }}{{ messages[-1]['content'] }}{{ messages|length }}", "systemU24", nil},
		{"slices", "{{ 'abcd'[1:] }}{{ 'abcd'[::-1] }}{{ [1,2,3,4][1:3] }}{% for m in messages[::-1] %}{{ m.content }}{% endfor %}", "bcddcba[2, 3]U2A1U1S", nil},
		{"if elif else", "{% for n in [1, 2, 3] %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %}{% endfor %}", "onetwomany", nil},
		{"loop vars", "{% for m in messages %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", "01truefalse4;12falsefalse4;23falsefalse4;34falsetrue4;", nil},
		{"for else and filter", "{% for x in [] %}x{% else %}empty{% endfor %}{% for x in [1,2,3,4] if x is even %}{{ x }}{% endfor %}", "empty24", nil},
		{"for unpack", "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", "a=1;b=2;", nil},
		{"break continue", "{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", "13", nil},
		{"set", "{% set x = 'a' + 'b' | upper %}{{ x }}", "aB", nil},
		{"set block", "{% set x %}in{{ 1 }}{% endset %}[{{ x }}]", "[in1]", nil},
		{"set scoped to loop", "{% set y = 0 %}{% for m in messages %}{% set y = 1 %}{% endfor %}{{ y }}", "0", nil},
		{"namespace", "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}", "4", nil},
		{"macro", "{% macro tag(name, v='x') %}<{{ name }}:{{ v }}>{% endmacro %}{{ tag('a') }}{{ tag('b', v=2) }}", "<a:x><b:2>", nil},
		{"conditional expr", "{{ 'y' if true else 'n' }}{{ 'y' if false }}", "y", nil},
		{"filters", "{{ ' a ' | trim }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 'hi there' | title }}|{{ [1,2] | join(',') }}|{{ [3,4] | first }}{{ [3,4] | last }}|{{ 'ab' | list }}|{{ 5 | string }}|{{ '12' | int + 1 }}|{{ 'aXa' | replace('a', 'b') }}", "a|AB|ab|Hi There|1,2|34|[\"a\", \"b\"]|5|13|bXb", nil},
		{"default", "{{ u | default('d') }}{{ '' | default('e', true) }}{{ 'x' | d('f') }}", "dex", nil},
		{"tojson", `{{ {'a': [1, 2.5, none, true], 'b': "q\"\n"} | tojson }}`, `{"a": [1, 2.5, null, true], "b": "q\"\n"}`, nil},
		{"tojson indent", "{{ {'a': [1]} | tojson(indent=2) }}", "{\n  \"a\": [\n    1\n  ]\n}", nil},
		{"items map selectattr", "{{ {'a': 1} | items | list }}{{ messages | map(attribute='role') | join(',') }}{{ messages | selectattr('role', 'equalto', 'user') | length }}{{ messages | rejectattr('role', 'equalto', 'user') | length }}", `[["a", 1]]system,user,assistant,user22`, nil},
		{"string methods", "{{ 'abc'.startswith('a') }}{{ 'abc'.endswith('bc') }}[{{ ' x '.strip() }}][{{ 'xxyxx'.lstrip('x') }}][{{ 'xxyxx'.rstrip('x') }}]{{ 'a,b'.split(',')[1] }}{{ 'a b  c'.split() | length }}{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}{{ 'aa'.replace('a', 'b') }}{{ 'ab cd'.title() }}", "truetrue[x][yxx][xxy]b3ABabbbAb Cd", nil},
		{"dict methods", "{{ {'a': 1}.get('a') }}{{ {'a': 1}.get('z', 'd') }}{{ {'a': 1}.keys() | list }}", `1d["a"]`, nil},
		{"vars", "{{ bos_token }}{% if add_generation_prompt %}GEN{% endif %}{{ eos_token }}", "<s>GEN</s>", map[string]any{"bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": true}},
		{"whitespace control", "a  {{- 'b' -}}  c {%- if true -%}  d  {%- endif -%} e", "abcde", nil},
		{"trim and lstrip blocks", "x\n    {% if true %}\n    y\n    {% endif %}\nz", "x\n    y\nz", nil},
		{"lstrip only at line start", "a {% if true %}b{% endif %}", "a b", nil},
		{"trailing newline dropped", "a\n", "a", nil},
		{"generation block", "{% generation %}g{% endgeneration %}", "g", nil},
		{"range", "{% for i in range(3) %}{{ i }}{% endfor %}", "012", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := render(t, tt.src, msgs, tt.vars)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unclosed block", "ab\n  {% if x %}y", "line 2, column 6: unclosed \"if\" block"},
		{"unclosed tag", "{{ x ", "line 1, column 1: unclosed tag"},
		{"unclosed comment", "{# x", "line 1, column 1: unclosed comment"},
		{"unknown filter", "\n{{ 'a' | nope }}", "line 2, column 10: unknown filter \"nope\""},
		{"unknown statement", "{% include 'x' %}", "line 1, column 4: unknown or unsupported statement"},
		{"raise_exception", "x\n{{ raise_exception('bad role') }}", "line 2, column 19: raise_exception: bad role"},
		{"bad expression", "{{ 1 + }}", "line 1, column 8: unexpected \"}}\""},
		{"stray endif", "{% endif %}", "unknown or unsupported statement \"endif\""},
		{"unterminated string", "{{ 'abc }}", "unterminated string literal"},
		{"set attr on non-namespace", "{% set x = 1 %}{% set x.a = 2 %}", "only namespace() objects"},
		{"strftime_now", "{{ strftime_now('%Y') }}", "strftime_now needs the time"},
		{"call non-function", "{{ x() }}", "cannot call undefined"},
		{"undefined arithmetic", "{{ 'a' + x }}", "unsupported operand types"},
		{"output cap", "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "exceeds"},
		{"iteration cap", "{% for a in range(2000) %}{% for b in range(2000) %}{% endfor %}{% endfor %}", "loop iterations"},
		{"macro recursion", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(t, tt.src, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestStrftimeNow(t *testing.T) {
	tpl, err := Parse(`{{ strftime_now("%Y-%m-%d") }}|{{ strftime_now("%d %b %Y") }}|{{ strftime_now("%A %B %j %I%p %H:%M:%S %y %%") }}`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 5, 14, 7, 9, 0, time.UTC)
	got, err := tpl.RenderAt(nil, nil, now)
	if want := "2026-03-05|05 Mar 2026|Thursday March 064 02PM 14:07:09 26 %"; err != nil || got != want {
		t.Errorf("RenderAt = %q, %v; want %q", got, err, want)
	}
	if _, err := tpl.Render(nil, nil); err == nil || !strings.Contains(err.Error(), "RenderAt") {
		t.Errorf("Render with strftime_now: %v, want an error naming RenderAt", err)
	}
	for _, bad := range []string{`{{ strftime_now("%Q") }}`, `{{ strftime_now("%") }}`, `{{ strftime_now(3) }}`} {
		tp, err := Parse(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tp.RenderAt(nil, nil, now); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
