package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHub: --hf serves DIR/ORG/REPO in the hub's layout: a git file
// directly with X-Repo-Commit, an LFS file as a 302 with the LFS headers to
// a content-addressed URL that serves ranges, the commit as a revision,
// and the hub's error codes; changing a file changes the commit and
// retires the old content URL.
func TestHub(t *testing.T) {
	d := t.TempDir()
	repo := filepath.Join(d, "test", "tiny")
	os.MkdirAll(repo, 0o755)
	weights := []byte(strings.Repeat("safetensors bytes ", 1000))
	os.WriteFile(filepath.Join(repo, "config.json"), []byte(`{"model_type":"olmoe"}`), 0o644)
	os.WriteFile(filepath.Join(repo, "model.safetensors"), weights, 0o644)
	log := &syncBuf{}
	s, err := newServer(config{hf: d, log: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() { srv.Close(); s.Close() })
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(c *http.Client, p, rg string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+p, nil)
		if rg != "" {
			req.Header.Set("Range", rg)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	resp, body := get(noFollow, "/hf/test/tiny/resolve/main/config.json", "")
	commit := resp.Header.Get("X-Repo-Commit")
	if resp.StatusCode != 200 || string(body) != `{"model_type":"olmoe"}` || len(commit) != 40 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "X-Repo-Commit") {
		t.Fatalf("config.json: %d %q commit %q headers %v", resp.StatusCode, body, commit, resp.Header)
	}
	sum := sha256.Sum256(weights)
	hexSum := hex.EncodeToString(sum[:])
	resp, _ = get(noFollow, "/hf/test/tiny/resolve/main/model.safetensors", "")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("X-Linked-Etag") != `"`+hexSum+`"` ||
		resp.Header.Get("X-Linked-Size") != fmt.Sprint(len(weights)) || resp.Header.Get("X-Repo-Commit") != commit ||
		!strings.HasPrefix(resp.Header.Get("Location"), "/hf-cdn/"+hexSum+"/") {
		t.Fatalf("model.safetensors: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body = get(http.DefaultClient, "/hf/test/tiny/resolve/"+commit+"/model.safetensors", "bytes=8-15")
	if resp.StatusCode != http.StatusPartialContent || string(body) != string(weights[8:16]) || resp.Header.Get("ETag") != `"`+hexSum+`"` ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 8-15/%d", len(weights)) {
		t.Fatalf("ranged read through the redirect: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	for _, tt := range []struct{ path, code string }{
		{"/hf/test/none/resolve/main/config.json", "RepoNotFound"},
		{"/hf/test/tiny/resolve/v9/config.json", "RevisionNotFound"},
		{"/hf/test/tiny/resolve/main/pytorch_model.bin", "EntryNotFound"},
		{"/hf/test/tiny/tree/main/config.json", "EntryNotFound"},
	} {
		if resp, _ := get(noFollow, tt.path, ""); resp.StatusCode != 404 || resp.Header.Get("X-Error-Code") != tt.code {
			t.Errorf("%s: %d %q, want 404 %s", tt.path, resp.StatusCode, resp.Header.Get("X-Error-Code"), tt.code)
		}
	}
	if resp, _ := get(noFollow, "/hf/test/tiny/resolve/main/..%2f..%2fsecret", ""); resp.StatusCode == 200 {
		t.Errorf("escaping path: %d", resp.StatusCode)
	}
	if !strings.Contains(log.String(), `"path":"/hf-cdn/`+hexSum) || !strings.Contains(log.String(), `"range":"bytes=8-15"`) {
		t.Errorf("log: %s", log)
	}

	// a new revision: the commit moves, the old one and its content URL are gone
	os.WriteFile(filepath.Join(repo, "model.safetensors"), append(weights, 'x'), 0o644)
	resp, _ = get(noFollow, "/hf/test/tiny/resolve/main/config.json", "")
	if c := resp.Header.Get("X-Repo-Commit"); c == commit || len(c) != 40 {
		t.Errorf("commit after a change: %q, was %q", c, commit)
	}
	if resp, _ := get(noFollow, "/hf/test/tiny/resolve/"+commit+"/config.json", ""); resp.StatusCode != 404 {
		t.Errorf("old commit: %d", resp.StatusCode)
	}
	if resp, _ := get(noFollow, "/hf-cdn/"+hexSum+"/model.safetensors", ""); resp.StatusCode != 404 {
		t.Errorf("old content URL: %d", resp.StatusCode)
	}
}
