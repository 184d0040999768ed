package rss

import "syscall"

// Peak returns the peak resident set size in bytes.
func Peak() (int64, error) {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0, err
	}
	return u.Maxrss * 1024, nil // Linux reports KiB
}
