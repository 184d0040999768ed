package webgpu

import "github.com/moderuntime/mode/runtime/backend"

// Pages is the number of bindings w is split across.
func Pages(w backend.Weight) int { return len(w.(*weight).pages) }

// Submissions is the number of queue submissions b has made.
func Submissions(b *Backend) int { return b.s.submits }

// Dispatches is the number of dispatches b has recorded of the kernels in
// a WGSL file.
func Dispatches(b *Backend, file string) int { return b.s.byFile[file] }

// SetMatVecTokens sets the largest batch b's MatMul sends to matvec.
func SetMatVecTokens(b *Backend, n int) { b.matVecTokens = n }

// CheckSubgroups runs the start-up subgroup check on b's current path.
func CheckSubgroups(b *Backend) (bool, error) { return b.checkSubgroups() }

// SetMoEWide makes b run the MoE matrix kernels with shaders.MoELanes
// lanes per row, as on a GPU, where it would take one.
func SetMoEWide(b *Backend, wide bool) { b.moeWide = wide }

// SetNoLayer turns b's FuseLayer off (true) or on.
func SetNoLayer(b *Backend, off bool) { b.noLayer = off }

// LayerPacks is the number of dense layers b has packed for layer.wgsl.
func LayerPacks(b *Backend) int { return len(b.packs) }
