//go:build wasip1

package shard

import (
	"errors"
	"net/http"
)

// defaultClient fails: wasip1 has no sockets, so an HTTP source needs a
// Client whose transport the host provides.
func defaultClient() (*http.Client, error) {
	return nil, errors.New("HTTP is not available on wasip1 (no network); set HTTPOptions.Client to a client with a working transport")
}
