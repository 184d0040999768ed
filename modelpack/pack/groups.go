package pack

import (
	"fmt"

	"github.com/moderuntime/mode/modelpack/manifest"
	"github.com/moderuntime/mode/runtime/model"
)

// groupSpecs cuts a config's tensor specs (in Config.Spec order) into the
// groups shards are made of: the core, each layer's always-used tensors,
// and each (layer, routed expert).
func groupSpecs(specs []model.TensorSpec) [][]model.TensorSpec {
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

// groupID is the shard id of the group sp belongs to (a writer appends
// ".N" for a group's extra shards).
func groupID(sp model.TensorSpec) string {
	switch {
	case sp.Layer < 0:
		return "core"
	case sp.Expert < 0:
		return fmt.Sprintf("layer.%d", sp.Layer)
	}
	return fmt.Sprintf("layer.%d.expert.%d", sp.Layer, sp.Expert)
}

// groupKind is the shard kind of the group sp belongs to.
func groupKind(sp model.TensorSpec) string {
	switch {
	case sp.Layer < 0:
		return manifest.KindCore
	case sp.Expert < 0:
		return manifest.KindLayer
	}
	return manifest.KindExpert
}
