// Package shared locates the reference data in ../shared for tests: it
// skips a test with a clear message when the data is absent, except under
// CI=true, where CI always provides it and its absence is a failure.
package shared
