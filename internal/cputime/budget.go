package cputime

import "time"

// Budget returns d scaled for the build: the race detector makes Go code
// run 5–20× slower (the manifest validator's worst case went from 0.5 s to
// 5.5 s of CPU time under -race), so a bound that catches a quadratic
// blow-up in a normal build would fail a race build that does the same
// work.
func Budget(d time.Duration) time.Duration { return d * raceSlowdown }
