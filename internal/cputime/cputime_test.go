package cputime

import (
	"testing"
	"time"
)

func TestNowCountsWork(t *testing.T) {
	// Busy work accumulates CPU time (however the machine is shared).
	before := Now()
	for deadline := time.Now().Add(30 * time.Second); Now()-before < 20*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("30 s of busy looping counted as %v of CPU time", Now()-before)
		}
	}
	// Sleeping does not.
	before = Now()
	time.Sleep(100 * time.Millisecond)
	if d := Now() - before; d > 50*time.Millisecond {
		t.Errorf("a 100 ms sleep counted as %v of CPU time", d)
	}
}

func TestBudgetNeverShrinks(t *testing.T) {
	if b := Budget(time.Second); b < time.Second {
		t.Errorf("Budget(1s) = %v", b)
	}
}
