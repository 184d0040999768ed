// Package progress reports the progress of a long byte-counting job: a
// progress bar with bytes and ETA on a terminal, plain periodic lines
// otherwise (logs, CI).
package progress
