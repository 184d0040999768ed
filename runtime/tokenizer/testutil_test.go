package tokenizer

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
)

// inCI reports whether the tests run in CI, where missing prerequisites are
// failures rather than reasons to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// skipOrFail skips the test, or fails it in CI.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// sharedModel returns the path of a file under the shared models
// directory (internal/shared: ../shared next to the repository, or
// MODE_SHARED), skipping the test when it is absent outside CI.
func sharedModel(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(shared.Models(t), rel)
	if _, err := os.Stat(p); err != nil {
		skipOrFail(t, "shared model file %s not available (%v)", p, err)
	}
	return p
}

// corpus returns the test corpus: every file under testdata/corpus whole,
// then each of their lines, without duplicates, in a stable order.
func corpus(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.txt"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no corpus files in testdata/corpus: %v", err)
	}
	sort.Strings(paths)
	seen := map[string]bool{}
	var texts []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			texts = append(texts, s)
		}
	}
	var files []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, string(b))
		add(string(b))
	}
	for _, f := range files {
		for _, line := range strings.SplitAfter(f, "\n") {
			add(line)
			add(strings.TrimRight(line, "\n"))
		}
	}
	return texts
}
