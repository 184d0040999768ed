package jsondepth

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		ok   bool
	}{
		{"flat", `{"a":[1,2,{"b":3}]}`, 3, true},
		{"too deep", `{"a":[1,2,{"b":3}]}`, 2, false},
		{"brackets in strings", `{"a":"[[[[{{{{\"[[["}`, 1, true},
		{"escaped backslash ends string", `["\\",[[[]]]]`, 3, false},
		{"closers do not go below zero usefully", `]]]]][[[`, 3, true},
		{"ten megabytes of [", strings.Repeat("[", 10<<20), Max, false},
		{"at the limit", strings.Repeat("[", Max) + strings.Repeat("]", Max), Max, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Check([]byte(tt.in), tt.max); (err == nil) != tt.ok {
				t.Fatalf("Check = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// TestCheckAllocatesNothing: the check must not cost memory in proportion
// to its input, which is the point of running it first.
func TestCheckAllocatesNothing(t *testing.T) {
	b := []byte("[" + strings.Repeat(`{"a":[1,"]"]},`, 1000) + "0]")
	if n := testing.AllocsPerRun(10, func() { Check(b, Max) }); n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}
