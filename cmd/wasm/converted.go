package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/tensor"
)

// convertedStore keeps an hf: repository's shards converted to the
// session's formats in the shard store (a loader.ConvertedStore), under
// the same budget and eviction as pack shards, so a second visit neither
// fetches nor converts them. A shard's key is made from what its tensors
// are converted from and to: the base URL (which names the commit the
// revision resolved to), each tensor's name, stored dtype, shape and byte
// range, and the format it is converted to. A new commit or another
// quantisation is another key; nothing is kept when the URLs do not name
// a commit (newConvertedStore is not called then).
//
// An entry is the tensors' bytes, each preceded by its length, sealed
// with their sha256 (see seal): a damaged entry is refetched, never used.
// Names, formats and shapes are not stored: the key fixes them.
type convertedStore struct {
	c       *cachingSource    // set once the source is made
	keys    map[string]string // shard ID → store key
	formats map[string]tensor.DType
}

func newConvertedStore(m *manifest.Manifest, base string, formats map[string]tensor.DType) *convertedStore {
	cs := &convertedStore{keys: map[string]string{}, formats: formats}
	for _, s := range m.Shards {
		var b strings.Builder
		fmt.Fprintf(&b, "converted\x00%s\x00%s", base, s.ID)
		for i, t := range s.Tensors {
			fmt.Fprintf(&b, "\x00%s\x00%s\x00%v\x00%v", t.Name, t.DType, t.Shape, formats[t.Name])
			if len(s.Pieces) == len(s.Tensors) {
				p := s.Pieces[i]
				fmt.Fprintf(&b, "\x00%s\x00%d\x00%d", p.File, p.Offset, p.Length)
			}
		}
		cs.keys[s.ID] = hashOf([]byte(b.String()))
	}
	return cs
}

// upfront lists the keys of the shards every visit loads, which the store
// never evicts.
func (cs *convertedStore) upfront(m *manifest.Manifest) []string {
	var out []string
	for _, s := range m.Shards {
		if s.Kind != manifest.KindExpert {
			out = append(out, cs.keys[s.ID])
		}
	}
	return out
}

func (cs *convertedStore) Get(ctx context.Context, s *manifest.Shard) ([]*tensor.Tensor, bool) {
	key, ok := cs.keys[s.ID]
	st := cs.c.store
	if !ok || st == nil {
		return nil, false
	}
	e, ok, err := st.get(ctx, key, s.Kind == manifest.KindExpert)
	if err != nil {
		cs.c.logf("storage: reading converted shard %s: %v", s.ID, err)
		return nil, false
	}
	if !ok {
		return nil, false
	}
	ts, err := cs.decode(s, e)
	if err != nil {
		st.forget(key)
		cs.c.logf("storage: converted shard %s: %v; fetching it again", s.ID, err)
		return nil, false
	}
	cs.c.count(content{upfront: s.Kind != manifest.KindExpert}, int64(len(e)), true, true)
	return ts, true
}

func (cs *convertedStore) Put(ctx context.Context, s *manifest.Shard, ts []*tensor.Tensor) {
	key, ok := cs.keys[s.ID]
	st := cs.c.store
	if !ok || st == nil {
		return
	}
	n := 4 + 8*len(ts)
	for i, t := range ts {
		if t.Name != s.Tensors[i].Name || t.DType != cs.formats[t.Name] {
			cs.c.logf("storage: not keeping shard %s: tensor %s is %v, its format is %v", s.ID, t.Name, t.DType, cs.formats[t.Name])
			return
		}
		n += len(t.Data)
	}
	b := make([]byte, 0, n+sha256.Size)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ts)))
	for _, t := range ts {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(t.Data)))
	}
	for _, t := range ts {
		b = append(b, t.Data...)
	}
	if _, err := st.put(ctx, key, seal(b), s.Kind == manifest.KindExpert); err != nil {
		cs.c.logf("storage: keeping converted shard %s: %v", s.ID, err)
	}
}

// decode checks and splits an entry into s's tensors.
func (cs *convertedStore) decode(s *manifest.Shard, e []byte) ([]*tensor.Tensor, error) {
	if len(e) < sha256.Size {
		return nil, fmt.Errorf("the entry is damaged (%d bytes)", len(e))
	}
	b, ok := unseal(e, int64(len(e)-sha256.Size))
	if !ok {
		return nil, fmt.Errorf("the entry is damaged (%d bytes)", len(e))
	}
	if len(b) < 4 || int(binary.LittleEndian.Uint32(b)) != len(s.Tensors) {
		return nil, fmt.Errorf("the entry does not hold its %d tensors", len(s.Tensors))
	}
	n := len(s.Tensors)
	if len(b) < 4+8*n {
		return nil, fmt.Errorf("the entry's %d bytes are too few for %d lengths", len(b), n)
	}
	data := b[4+8*n:]
	ts := make([]*tensor.Tensor, n)
	for i, mt := range s.Tensors {
		l := binary.LittleEndian.Uint64(b[4+8*i:])
		if l > uint64(len(data)) {
			return nil, fmt.Errorf("tensor %s: %d bytes, the entry has %d left", mt.Name, l, len(data))
		}
		ts[i] = &tensor.Tensor{Name: mt.Name, DType: cs.formats[mt.Name], Shape: append([]int(nil), mt.Shape...), Data: data[:l:l]}
		if err := ts[i].Check(); err != nil {
			return nil, err
		}
		data = data[l:]
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("%d bytes past the tensors", len(data))
	}
	return ts, nil
}

// stored reports whether the store holds shard s converted.
func (cs *convertedStore) stored(s *manifest.Shard) bool {
	key, ok := cs.keys[s.ID]
	return ok && cs.c.stored(key)
}
