package pack

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/moderuntime/mode/runtime/manifest"
)

// Inspect prints a report of a pack: per-tensor format and quantisation
// error, shard sizes, expert sizes per layer and the share of bytes that are
// routed experts (what a client need not download).
func Inspect(w io.Writer, m *manifest.Manifest) error {
	c := &m.Model
	total, active := c.Params()
	fmt.Fprintf(w, "model: %s, %d layers, dim %d, vocab %d, %.2fM params (%.2fM active per token), quant %s\n",
		c.Arch, c.Layers, c.Dim, c.Vocab, float64(total)/1e6, float64(active)/1e6, m.QuantSummary())

	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTENSOR\tDTYPE\tSHAPE\tROWS\tBYTES\tQUANT RMS")
	for _, s := range m.Shards {
		for _, t := range s.Tensors {
			rows := "all"
			if t.Rows > 0 {
				rows = fmt.Sprintf("%d..%d", t.Row0, t.Row0+t.Rows)
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%d\t%.3g\n", t.Name, t.DType, t.Shape, rows, t.Length, t.QuantRMS)
		}
	}
	tw.Flush()

	bytes, weights := map[string]int64{}, map[string]int64{} // per shard kind
	perLayer := map[int][]int64{}
	fmt.Fprintln(tw, "\nSHARD\tKIND\tBYTES\tTENSORS")
	for _, s := range m.Shards {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", s.ID, s.Kind, s.Size, len(s.Tensors))
		bytes[s.Kind] += s.Size
		for _, t := range s.Tensors {
			weights[s.Kind] += elems(t)
		}
		if s.Kind == manifest.KindExpert {
			perLayer[s.Layer] = append(perLayer[s.Layer], s.Size)
		}
	}
	tw.Flush()
	if len(perLayer) > 0 {
		fmt.Fprintln(w, "\nexpert shard bytes per layer (min / mean / max, count):")
		layers := make([]int, 0, len(perLayer))
		for l := range perLayer {
			layers = append(layers, l)
		}
		sort.Ints(layers)
		for _, l := range layers {
			v := perLayer[l]
			mn, mx, sum := v[0], v[0], int64(0)
			for _, x := range v {
				mn, mx, sum = min(mn, x), max(mx, x), sum+x
			}
			fmt.Fprintf(w, "  layer %3d: %d / %d / %d, %d experts\n", l, mn, sum/int64(len(v)), mx, len(v))
		}
	}
	core, layer, expert := bytes[manifest.KindCore], bytes[manifest.KindLayer], bytes[manifest.KindExpert]
	all := core + layer + expert
	fmt.Fprintf(w, "\nbytes: core %d, layers %d, experts %d, total %d; experts are %.1f%% of the pack\n",
		core, layer, expert, all, 100*float64(expert)/float64(max(all, 1)))
	bpw := func(bytes, n int64) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", 8*float64(bytes)/float64(n))
	}
	fmt.Fprintf(w, "bits per weight (shard bytes, padding included): core %s, layers %s, experts %s, all %s\n",
		bpw(core, weights[manifest.KindCore]), bpw(layer, weights[manifest.KindLayer]), bpw(expert, weights[manifest.KindExpert]),
		bpw(all, weights[manifest.KindCore]+weights[manifest.KindLayer]+weights[manifest.KindExpert]))
	return nil
}

// elems is the number of values t stores: its rows in this piece times the
// rest of its shape.
func elems(t manifest.Tensor) int64 {
	n := int64(1)
	for i, d := range t.Shape {
		if i == 0 && t.Rows > 0 {
			d = t.Rows
		}
		n *= int64(d)
	}
	return n
}
