package webgpu

import "github.com/moderuntime/mode/runtime/backend"

// Pages is the number of bindings w is split across.
func Pages(w backend.Weight) int { return len(w.(*weight).pages) }

// Submissions is the number of queue submissions b has made.
func Submissions(b *Backend) int { return b.s.submits }
