//go:build !linux

package rss

import "errors"

// Peak is not implemented off Linux.
func Peak() (int64, error) { return 0, errors.New("peak RSS is reported on Linux only") }
