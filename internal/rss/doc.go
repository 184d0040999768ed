// Package rss reports the process's peak resident set size for benchmarks.
package rss
