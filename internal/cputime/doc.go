// Package cputime reads the CPU time this process has used, so that tests
// bounding how long hostile input takes to reject measure the work done
// rather than the wall clock, which other jobs on a loaded machine stretch.
package cputime
