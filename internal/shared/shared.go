package shared

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir returns the shared/ directory next to the repository root, or "".
func Dir() string {
	if d := os.Getenv("MODE_SHARED"); d != "" {
		return d
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	d := filepath.Join(root, "..", "shared")
	if st, err := os.Stat(d); err == nil && st.IsDir() {
		return d
	}
	return ""
}

// Models returns shared/models, skipping t when it is missing (failing it
// when CI=true).
func Models(t testing.TB) string {
	t.Helper()
	d := Dir()
	if d != "" {
		m := filepath.Join(d, "models")
		if _, err := os.Stat(filepath.Join(m, "stories260K", "stories260K.bin")); err == nil {
			return m
		}
	}
	msg := "reference models not found: expected ../shared/models/stories260K next to the repository (or set MODE_SHARED)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI always provides them")
	}
	t.Skip(msg)
	return ""
}
