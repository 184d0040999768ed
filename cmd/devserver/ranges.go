package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxRanges bounds the ranges of one request. The runtime asks for one;
// browsers and CDNs for a few. Many small ranges make a multipart answer
// far larger than the bytes asked for.
const maxRanges = 16

// byteRange is [start, end], both inclusive, as in Content-Range.
type byteRange struct{ start, end int64 }

// parseRange checks a Range header against a file of size bytes before
// http.ServeContent sees it, which answers "bytes=-0" with a 206 whose
// Content-Range is invalid and serves any number of overlapping ranges.
// It returns the satisfiable ranges in the order asked, or an error for a
// header to answer with 416: bad syntax, more than maxRanges ranges,
// overlapping ones, or none satisfiable.
func parseRange(h string, size int64) ([]byteRange, error) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return nil, fmt.Errorf("range unit is not bytes: %q", h)
	}
	parts := strings.Split(spec, ",")
	if len(parts) > maxRanges {
		return nil, fmt.Errorf("%d ranges, more than the %d served", len(parts), maxRanges)
	}
	var out []byteRange
	for _, p := range parts {
		p = strings.TrimSpace(p)
		first, last, ok := strings.Cut(p, "-")
		if !ok {
			return nil, fmt.Errorf("range %q has no '-'", p)
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		var r byteRange
		switch {
		case first == "": // the last N bytes
			n, err := parseOffset(last)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				continue // unsatisfiable: zero bytes
			}
			r = byteRange{max(size-n, 0), size - 1}
		default:
			start, err := parseOffset(first)
			if err != nil {
				return nil, err
			}
			end := size - 1
			if last != "" {
				if end, err = parseOffset(last); err != nil {
					return nil, err
				}
				if end < start {
					return nil, fmt.Errorf("range %q ends before it starts", p)
				}
				end = min(end, size-1)
			}
			r = byteRange{start, end}
		}
		if r.start >= size {
			continue // unsatisfiable: past the end
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("no satisfiable range")
	}
	sorted := slices.Clone(out)
	slices.SortFunc(sorted, func(a, b byteRange) int { return int(min(max(a.start-b.start, -1), 1)) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].start <= sorted[i-1].end {
			return nil, fmt.Errorf("ranges [%d, %d] and [%d, %d] overlap", sorted[i-1].start, sorted[i-1].end, sorted[i].start, sorted[i].end)
		}
	}
	return out, nil
}

// formatRanges is a Range header asking for exactly rs, which is what
// http.ServeContent is given: it then serves the ranges parseRange
// checked, whatever else the client's header held.
func formatRanges(rs []byteRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%d-%d", r.start, r.end)
	}
	return "bytes=" + strings.Join(parts, ",")
}

// parseOffset reads a non-negative decimal byte offset.
func parseOffset(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("bad byte offset %q", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad byte offset %q", s)
	}
	return n, nil
}
