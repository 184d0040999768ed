// Package jsondepth bounds the nesting of JSON text before a parser sees
// it. encoding/json stops at 10000 levels, but a hand-written walk over
// its tokens (one stack entry per level) has no such stop, and no real
// file of ours nests more than a handful of levels: checking first, in one
// pass that allocates nothing, keeps every parser of untrusted JSON cheap.
package jsondepth
