//go:build linux

package main

import "syscall"

// osYield gives this thread's CPU to another thread that is ready to run,
// if there is one (sched_yield).
func osYield() { syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
