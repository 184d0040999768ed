package shard

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ParseContentRange is parseContentRange, for clients that read ranges
// with their own requests.
func ParseContentRange(s string) (first, last, total int64, err error) { return parseContentRange(s) }

// parseContentRange parses a 206 response's Content-Range,
// "bytes first-last/total" with total "*" when unknown (returned as -1).
// The unsatisfied form "bytes */total" is an error: it belongs to a 416,
// which is never read as data.
func parseContentRange(s string) (first, last, total int64, err error) {
	bad := func(why string) (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q: %s", s, why)
	}
	unit, spec, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return bad(`want "bytes first-last/total"`)
	}
	spec = strings.TrimLeft(spec, " ")
	rng, size, ok := strings.Cut(spec, "/")
	if !ok {
		return bad("no /total")
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return bad("no first-last range")
	}
	if first, err = parseDigits(a); err != nil {
		return bad("first byte: " + err.Error())
	}
	if last, err = parseDigits(b); err != nil {
		return bad("last byte: " + err.Error())
	}
	if last < first {
		return bad("last byte before first")
	}
	total = -1
	if size != "*" {
		if total, err = parseDigits(size); err != nil {
			return bad("total: " + err.Error())
		}
		if last >= total {
			return bad("range ends past the total")
		}
	}
	return first, last, total, nil
}

// parseDigits accepts only ASCII digits: strconv alone would also take a
// sign, which has no place in a byte position.
func parseDigits(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a number", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return n, nil
}

// rangeHeader is the Range value for n bytes from off, or from off to the
// end of the file when n < 0.
func rangeHeader(off, n int64) string {
	if n < 0 {
		return fmt.Sprintf("bytes=%d-", off)
	}
	return fmt.Sprintf("bytes=%d-%d", off, off+n-1)
}
