//go:build race

package cpu_test

// raceEnabled: the race detector slows the engine about tenfold, so tests
// whose statistics the other passes of make test already assert run only
// as much as exercises the threads.
const raceEnabled = true
