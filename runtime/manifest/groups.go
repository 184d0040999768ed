package manifest

import (
	"fmt"

	"github.com/moderuntime/mode/runtime/model"
)

// Groups cuts a config's tensor specs (in Config.Spec order) into the
// groups shards are made of: the core, each layer's always-used tensors,
// and each (layer, routed expert).
func Groups(specs []model.TensorSpec) [][]model.TensorSpec {
	var out [][]model.TensorSpec
	for i := 0; i < len(specs); {
		j := i
		for j < len(specs) && specs[j].Layer == specs[i].Layer && specs[j].Expert == specs[i].Expert {
			j++
		}
		out = append(out, specs[i:j])
		i = j
	}
	return out
}

// GroupID is the shard id of the group sp belongs to (a writer appends
// ".N" for a group's extra shards).
func GroupID(sp model.TensorSpec) string {
	switch {
	case sp.Layer < 0:
		return "core"
	case sp.Expert < 0:
		return fmt.Sprintf("layer.%d", sp.Layer)
	}
	return fmt.Sprintf("layer.%d.expert.%d", sp.Layer, sp.Expert)
}

// GroupKind is the shard kind of the group sp belongs to.
func GroupKind(sp model.TensorSpec) string {
	switch {
	case sp.Layer < 0:
		return KindCore
	case sp.Expert < 0:
		return KindLayer
	}
	return KindExpert
}
