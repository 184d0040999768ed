package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestLoadPinnedManifest: the page's model URL reaches the loader with its
// "#sha256=" fragment, which is checked against the manifest's bytes.
func TestLoadPinnedManifest(t *testing.T) {
	url, _ := servePack(t)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	s := newSession(env{})
	if _, e, _, _ := call(s, "load", loadParams{Model: url + "#sha256=" + hex.EncodeToString(sum[:])}); e != nil {
		t.Fatalf("load with the right pin: %+v", e)
	}
	s.unload()
	wrong := strings.Repeat("0", 64)
	_, e, _, _ := call(newSession(env{}), "load", loadParams{Model: url + "#sha256=" + wrong})
	if e == nil || e.Code != "load_failed" || !strings.Contains(e.Message, "but the location pins "+wrong) {
		t.Fatalf("load with a wrong pin: %+v", e)
	}
}
