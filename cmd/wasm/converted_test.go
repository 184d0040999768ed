package main

import (
	"context"
	"slices"
	"testing"

	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/tensor"
)

// convertedFixture is a shard of two tensors converted to q8_0 and f32,
// and a store holding nothing yet.
func convertedFixture(t testing.TB) (*convertedStore, *manifest.Shard, []*tensor.Tensor, *mapStore) {
	s := &manifest.Shard{ID: "layer.0", Kind: manifest.KindLayer, Unverified: true,
		Tensors: []manifest.Tensor{{Name: "a", DType: "bf16", Shape: []int{2, 32}}, {Name: "b", DType: "bf16", Shape: []int{3}}}}
	m := &manifest.Manifest{Shards: []manifest.Shard{*s}}
	formats := map[string]tensor.DType{"a": tensor.Q8_0, "b": tensor.F32}
	a, err := tensor.Quantize(tensor.FromF32("a", []int{2, 32}, make([]float32, 64)), tensor.Q8_0)
	if err != nil {
		t.Fatal(err)
	}
	ts := []*tensor.Tensor{a, tensor.FromF32("b", []int{3}, []float32{1, 2, 3})}
	store := &mapStore{m: map[string][]byte{}}
	cs := newConvertedStore(m, "http://hub/org/repo/resolve/"+"0123456789012345678901234567890123456789/", formats)
	cs.c = newCachingSource(nil, storeOptions{store: store, converted: true, keep: cs.upfront(m)}, m, t.Logf)
	return cs, s, ts, store
}

// TestConvertedStore: a shard's converted tensors come back as stored,
// under another base URL (another commit) they are not found, and a
// damaged entry is refused (and fetched again by the loader).
func TestConvertedStore(t *testing.T) {
	cs, s, ts, store := convertedFixture(t)
	ctx := context.Background()
	if _, ok := cs.Get(ctx, s); ok {
		t.Fatal("found before stored")
	}
	cs.Put(ctx, s, ts)
	got, ok := cs.Get(ctx, s)
	if !ok || len(got) != 2 {
		t.Fatalf("Get after Put: %v %v", got, ok)
	}
	for i := range ts {
		if got[i].Name != ts[i].Name || got[i].DType != ts[i].DType || !slices.Equal(got[i].Shape, ts[i].Shape) || !slices.Equal(got[i].Data, ts[i].Data) {
			t.Errorf("tensor %d: %+v, stored %+v", i, got[i], ts[i])
		}
	}
	if !cs.stored(s) {
		t.Error("stored reports the shard missing")
	}
	other := newConvertedStore(&manifest.Manifest{Shards: []manifest.Shard{*s}}, "http://hub/org/repo/resolve/"+"1123456789012345678901234567890123456789/", cs.formats)
	other.c = cs.c
	if _, ok := other.Get(ctx, s); ok {
		t.Error("another commit's store found the shard")
	}
	store.mu.Lock()
	for k, b := range store.m {
		if k != indexKey {
			b[5] ^= 1
		}
	}
	store.mu.Unlock()
	if _, ok := cs.Get(ctx, s); ok {
		t.Error("a damaged entry was used")
	}
	// a tensor in another format than the session's is not kept
	cs2, s2, ts2, _ := convertedFixture(t)
	ts2[1] = &tensor.Tensor{Name: "b", DType: tensor.F16, Shape: []int{3}, Data: make([]byte, 6)}
	cs2.Put(ctx, s2, ts2)
	if _, ok := cs2.Get(ctx, s2); ok {
		t.Error("a tensor in the wrong format was kept")
	}
}

// FuzzConvertedDecode: any stored bytes decode to the shard's tensors,
// each checked, or to an error; never a panic.
func FuzzConvertedDecode(f *testing.F) {
	cs, s, ts, store := convertedFixture(f)
	cs.Put(context.Background(), s, ts)
	for k, b := range store.m {
		if k != indexKey {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add(seal([]byte{2, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, e []byte) {
		got, err := cs.decode(s, e)
		if err != nil {
			return
		}
		for i, g := range got {
			if g.Name != s.Tensors[i].Name || g.Check() != nil {
				t.Fatalf("decoded %+v", g)
			}
		}
	})
}
