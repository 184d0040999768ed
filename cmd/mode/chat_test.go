package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// turnStats are the per-turn token counts mode chat prints on stderr.
var turnStats = regexp.MustCompile(`\[(\d+) prompt tokens: (\d+) cached, (\d+) prefilled; (\d+) generated; (\w+)\]`)

// turns parses stderr's per-turn lines into [prompt, cached, prefilled,
// generated].
func turns(t *testing.T, stderr string) [][4]int {
	t.Helper()
	var out [][4]int
	for _, m := range turnStats.FindAllStringSubmatch(stderr, -1) {
		var v [4]int
		for i := range v {
			v[i], _ = strconv.Atoi(m[i+1])
		}
		out = append(out, v)
	}
	return out
}

func TestChat(t *testing.T) {
	m := stories(t)
	_, alone, _ := runModeIn("Tell me a story.\n", "chat", "-m", m, "-n", "30")
	tests := []struct {
		name  string
		args  []string
		stdin string
		check func(t *testing.T, stdout, stderr string, ts [][4]int)
	}{
		{"follow-up reuses the cache, reset starts over", []string{"-n", "30"}, "Tell me a story.\nWhat did she do next?\n/reset\nTell me a story.\n",
			func(t *testing.T, stdout, stderr string, ts [][4]int) {
				if len(ts) != 3 {
					t.Fatalf("%d turns answered, want 3", len(ts))
				}
				// turn 2 reuses turn 1's prompt and reply (but for the
				// last reply id, never fed back) and prefills the rest
				if ts[1][1] != ts[0][0]+ts[0][3]-1 || ts[1][1]+ts[1][2] != ts[1][0] {
					t.Errorf("turn 1 %v, turn 2 %v: want turn 2 to reuse turn 1's prompt", ts[0], ts[1])
				}
				if ts[2][1] != 0 || !strings.Contains(stderr, "(a new conversation)") {
					t.Errorf("after /reset: %v cached", ts[2])
				}
				// greedy: the first reply again after /reset
				if !strings.HasPrefix(stdout, alone) || !strings.HasSuffix(stdout, alone) || len(stdout) <= 2*len(alone) {
					t.Errorf("stdout %q does not start and end with the first reply %q", stdout, alone)
				}
			}},
		{"overflow leaves out old turns", []string{"--ctx", "96", "-n", "16", "--system", "You tell stories."},
			strings.Repeat("Tell me more.\nWhat happened then?\n", 4),
			func(t *testing.T, stdout, stderr string, ts [][4]int) {
				if len(ts) != 8 || !strings.Contains(stderr, "oldest messages were left out") {
					t.Fatalf("%d turns answered, want 8; stderr %s", len(ts), stderr)
				}
			}},
		{"a message longer than the context", []string{"--ctx", "32", "-n", "8"}, strings.Repeat("the cat sat on the mat ", 10) + "\nHi\n",
			func(t *testing.T, stdout, stderr string, ts [][4]int) {
				if len(ts) != 1 || !strings.Contains(stderr, "shorten them") {
					t.Errorf("%d turns answered, want 1 and an error about the first; stderr %s", len(ts), stderr)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runModeIn(tt.stdin, append([]string{"chat", "-m", m}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			tt.check(t, stdout, stderr, turns(t, stderr))
		})
	}
}
