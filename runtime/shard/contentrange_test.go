package shard

import (
	"fmt"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-9/10", 0, 9, 10, true},
		{"bytes 100-199/*", 100, 199, -1, true},
		{"BYTES 5-5/6", 5, 5, 6, true},
		{" bytes  1-2/3 ", 1, 2, 3, true},
		{"bytes 0-9223372036854775806/9223372036854775807", 0, 9223372036854775806, 9223372036854775807, true},
		{"", 0, 0, 0, false},
		{"bytes */10", 0, 0, 0, false},
		{"bytes 0-9", 0, 0, 0, false},
		{"bytes 0-10/10", 0, 0, 0, false},
		{"bytes 9-0/10", 0, 0, 0, false},
		{"bytes -1-9/10", 0, 0, 0, false},
		{"bytes +1-9/10", 0, 0, 0, false},
		{"bytes 0--9/10", 0, 0, 0, false},
		{"bytes 0-9/-10", 0, 0, 0, false},
		{"bytes 0-9/1O", 0, 0, 0, false},
		{"items 0-9/10", 0, 0, 0, false},
		{"bytes 0-99999999999999999999/*", 0, 0, 0, false},
	}
	for _, tt := range tests {
		first, last, total, err := parseContentRange(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("parseContentRange(%q): error %v, want ok %v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && (first != tt.first || last != tt.last || total != tt.total) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, want %d, %d, %d", tt.in, first, last, total, tt.first, tt.last, tt.total)
		}
	}
}

// FuzzParseContentRange checks that no header makes the parser panic and
// that whatever it accepts is a sane range that reads back the same.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 100-199/*", "bytes */10", "bytes 1-0/5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, total, err := parseContentRange(s)
		if err != nil {
			return
		}
		if first < 0 || last < first || total < -1 || (total >= 0 && last >= total) {
			t.Fatalf("parseContentRange(%q) accepted %d-%d/%d", s, first, last, total)
		}
		size := "*"
		if total >= 0 {
			size = fmt.Sprint(total)
		}
		again := fmt.Sprintf("bytes %d-%d/%s", first, last, size)
		f2, l2, t2, err := parseContentRange(again)
		if err != nil || f2 != first || l2 != last || t2 != total {
			t.Fatalf("%q parsed to %q, which reads back as %d-%d/%d, %v", s, again, f2, l2, t2, err)
		}
	})
}
