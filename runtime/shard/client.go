//go:build !wasip1

package shard

import (
	"net/http"
	"time"
)

// defaultClient has timeouts for each step before the body and none for
// the body itself, whose length is unbounded; the caller's context is the
// overall limit. Cloning DefaultTransport keeps its proxy settings and, on
// js/wasm, its lack of a dialer, which is what routes requests through the
// browser's fetch.
func defaultClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: tr}, nil
}
