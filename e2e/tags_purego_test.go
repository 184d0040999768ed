//go:build purego

package e2e

// buildTags are the tags this test binary was built with, for the
// binaries a test builds to compute the same bits as it does.
const buildTags = "purego"
