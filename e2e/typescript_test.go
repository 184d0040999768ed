package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTypeScript compiles scripts/tscheck (examples that use the API as
// docs/js-api.md shows, and misuses that must not compile) against
// web/mode.d.ts with tsc --noEmit in strict mode. The TypeScript compiler
// is the npm package pinned in scripts/tscheck/package-lock.json.
func TestTypeScript(t *testing.T) {
	for _, tool := range []string{"node", "npm", "npx"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := tool + " not found: run scripts/ensure-node.sh (as root on Debian) to install node and npm"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg + "; CI must provide it")
			}
			t.Skip(msg)
		}
	}
	dir, err := filepath.Abs(filepath.Join("..", "scripts", "tscheck"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
		}
		return string(out)
	}
	if installedTypeScript(t, dir) != pinnedTypeScript(t, dir) {
		run("npm", "ci", "--no-audit", "--no-fund")
		if got, want := installedTypeScript(t, dir), pinnedTypeScript(t, dir); got != want {
			t.Fatalf("after npm ci typescript is %q, want the pinned %q", got, want)
		}
	}
	files := run("npx", "--no-install", "tsc", "--noEmit", "-p", ".", "--listFiles")
	// An empty or misdirected project would pass trivially.
	for _, f := range []string{"web/mode.d.ts", "scripts/tscheck/example.ts", "scripts/tscheck/misuse.ts"} {
		if !strings.Contains(files, f) {
			t.Errorf("tsc did not compile %s; it read:\n%s", f, files)
		}
	}
}

// pinnedTypeScript is the version of typescript in the lockfile.
func pinnedTypeScript(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatalf("package-lock.json: %v", err)
	}
	v := lock.Packages["node_modules/typescript"].Version
	if v == "" {
		t.Fatal("package-lock.json pins no typescript")
	}
	return v
}

// installedTypeScript is the version in node_modules, "" when absent.
func installedTypeScript(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "typescript", "package.json"))
	if err != nil {
		return ""
	}
	var p struct{ Version string }
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("node_modules/typescript/package.json: %v", err)
	}
	return p.Version
}
