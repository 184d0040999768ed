package shard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpen(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "m.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		loc      string
		wantHTTP string // base URL of an HTTP source; "" for a Dir
		wantDir  string
		wantName string
		wantErr  string
	}{
		{loc: "http://h/packs/m/manifest.json", wantHTTP: "http://h/packs/m/", wantName: "manifest.json"},
		{loc: "HTTPS://h/packs/m/custom.json?sig=abc", wantHTTP: "https://h/packs/m/", wantName: "custom.json"},
		{loc: "https://h/packs/m/", wantHTTP: "https://h/packs/m/", wantName: ManifestName},
		{loc: "https://h", wantHTTP: "https://h/", wantName: ManifestName},
		{loc: filepath.Join(root, "m.json"), wantDir: root, wantName: "m.json"},
		{loc: root, wantDir: root, wantName: ManifestName},
		{loc: "rel/manifest.json", wantDir: "rel", wantName: "manifest.json"},
		{loc: "manifest.json", wantDir: ".", wantName: "manifest.json"},
		{loc: "", wantErr: "empty location"},
		{loc: "http://", wantErr: "with a host"},
	}
	for _, tt := range tests {
		src, name, err := Open(tt.loc, HTTPOptions{})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Open(%q): error %v, want one containing %q", tt.loc, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(%q): %v", tt.loc, err)
			continue
		}
		if name != tt.wantName {
			t.Errorf("Open(%q): name %q, want %q", tt.loc, name, tt.wantName)
		}
		switch s := src.(type) {
		case *HTTP:
			if tt.wantHTTP == "" || s.base.String() != tt.wantHTTP {
				t.Errorf("Open(%q): HTTP source at %s, want %q", tt.loc, s.base, tt.wantHTTP)
			}
		case dir:
			if tt.wantDir == "" || s.root != tt.wantDir {
				t.Errorf("Open(%q): Dir at %s, want %q", tt.loc, s.root, tt.wantDir)
			}
		default:
			t.Errorf("Open(%q): source %T", tt.loc, src)
		}
	}
}
