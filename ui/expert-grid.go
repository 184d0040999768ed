package ui

import "fmt"

// ExpertGrid draws an ExpertMap: a grid of layers × experts, each cell
// coloured by its state, with the layer's expert cache hit rate at the end
// of its row.
type ExpertGrid struct {
	Map ExpertMap
}

// Summary is the map in words, for screen readers (the cells themselves
// are hidden from them: hundreds of cells would be noise).
func (c *ExpertGrid) Summary() string {
	m := c.Map
	routed, resident, cached := m.Count(Routed), m.Count(Resident), m.Count(Cached)
	return fmt.Sprintf("Expert map, %d layers of %d experts: %d not fetched, %d cached, %d in memory, %d routed for the current token",
		m.Layers, m.Experts, m.Layers*m.Experts-cached, cached-resident, resident-routed, routed)
}

// GridStyle sizes the columns: a layer label, one per expert, a hit rate.
func (c *ExpertGrid) GridStyle() string {
	return fmt.Sprintf("grid-template-columns: 2.2em repeat(%d, minmax(3px, 1fr)) 3em", c.Map.Experts)
}

// CellTitle is the tooltip of a cell.
func (c *ExpertGrid) CellTitle(layer, expert int, st Cell) string {
	return fmt.Sprintf("layer %d, expert %d: %s", layer, expert, st.Name())
}
