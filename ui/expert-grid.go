package ui

import "fmt"

// ExpertGrid draws an ExpertMap: a grid of layers × experts, each cell
// coloured by its state and ringed by how often recent tokens were routed
// to it, with the layer's expert cache hit rate at the end of its row.
type ExpertGrid struct {
	Map ExpertMap
}

// Summary is the map in words, for screen readers (the cells themselves
// are hidden from them: hundreds of cells would be noise).
func (c *ExpertGrid) Summary() string {
	m := c.Map
	routed, resident, cached := m.Count(Routed), m.Count(Resident), m.Count(Cached)
	return fmt.Sprintf("Expert map, %d layers of %d experts: %d not downloaded, %d downloaded only, %d in memory, %d routed for the last token",
		m.Layers, m.Experts, m.Layers*m.Experts-cached, cached-resident, resident-routed, routed)
}

// GridStyle sizes the columns: a layer label, one per expert, a hit rate.
func (c *ExpertGrid) GridStyle() string {
	return fmt.Sprintf("grid-template-columns: 2.2em repeat(%d, minmax(3px, 1fr)) 3em", c.Map.Experts)
}

// CellClass is the class list of a cell: its state, and its heat bucket.
func (c *ExpertGrid) CellClass(layer, expert int) string {
	return "cell " + c.Map.Cells[layer][expert].Name() + heatClass(c.Map.heat(layer, expert), c.Map.Window)
}

// CellTitle is the tooltip of a cell.
func (c *ExpertGrid) CellTitle(layer, expert int) string {
	return c.Map.CellTitle(layer, expert)
}

// HitTitle explains a layer's percentage.
func (c *ExpertGrid) HitTitle(layer int) string {
	return fmt.Sprintf("layer %d: %s of its expert lookups found the expert already in the engine's memory (expert cache hit rate)", layer, HitText(c.Map.HitRate, layer))
}
