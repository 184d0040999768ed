//go:build !race

package cputime

const raceSlowdown = 1
