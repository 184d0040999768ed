package webgpu_test

import (
	"slices"
	"testing"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/webgpu"
)

// TestWriteRoutes: choices edited on the host and written back are what
// ReadRoutes returns, on the device buffer the MoE op reads.
func TestWriteRoutes(t *testing.T) {
	b := newBackend(t, webgpu.Options{})
	logits, err := b.NewBuf(3, 4)
	if err != nil {
		t.Fatal(err)
	}
	w, err := b.Upload(tensor.FromF32("x", []int{3, 4}, []float32{1, 2, 3, 4, 4, 3, 2, 1, 0, 5, 0, 0}))
	if err != nil {
		t.Fatal(err)
	}
	b.Embed(logits, w, []int{0, 1, 2})
	r := b.Route(logits, backend.RouteSpec{Rule: &model.Router{Scoring: model.Softmax, TopK: 2}})
	got, err := b.ReadRoutes(r)
	if err != nil {
		t.Fatal(err)
	}
	if got[0][0].Expert != 3 || got[1][0].Expert != 0 || got[2][0].Expert != 1 {
		t.Fatalf("routes %v", got)
	}
	edit := [][]routing.Choice{{{Expert: 2, Weight: 0.5}, {Expert: 1, Weight: 0.25}}, {{Expert: 3, Weight: 1}}, got[2]}
	if err := b.WriteRoutes(r, edit); err != nil {
		t.Fatal(err)
	}
	back, err := b.ReadRoutes(r)
	if err != nil {
		t.Fatal(err)
	}
	for i := range edit {
		if !slices.Equal(back[i], edit[i]) {
			t.Errorf("token %d: read back %v, wrote %v", i, back[i], edit[i])
		}
	}
	if err := b.WriteRoutes(r, edit[:2]); err == nil {
		t.Error("routes for the wrong number of tokens were accepted")
	}
}
