package hf

import (
	"bytes"
	"strings"
	"testing"
)

// TestInterleaveHelpers: the picks on a 3×4 matrix of 1-byte elements
// whose element (r, c) is 10·r+c, and one of 2-byte elements, against
// the matrices written out by hand.
func TestInterleaveHelpers(t *testing.T) {
	m := []byte{0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23}
	m2 := make([]byte, 0, 2*len(m)) // element v stored as (v, 100+v)
	for _, v := range m {
		m2 = append(m2, v, 100+v)
	}
	for _, tt := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"transpose all", transposeColumns(m, 1, 3, 4, 0, 1), []byte{0, 10, 20, 1, 11, 21, 2, 12, 22, 3, 13, 23}},
		{"transpose even", transposeColumns(m, 1, 3, 4, 0, 2), []byte{0, 10, 20, 2, 12, 22}},
		{"transpose odd", transposeColumns(m, 1, 3, 4, 1, 2), []byte{1, 11, 21, 3, 13, 23}},
		{"transpose odd 2-byte", transposeColumns(m2, 2, 3, 4, 1, 2), []byte{1, 101, 11, 111, 21, 121, 3, 103, 13, 113, 23, 123}},
		{"columns even", pickColumns(m, 1, 3, 4, 0, 2), []byte{0, 2, 10, 12, 20, 22}},
		{"columns odd", pickColumns(m, 1, 3, 4, 1, 2), []byte{1, 3, 11, 13, 21, 23}},
		{"columns odd 2-byte", pickColumns(m2, 2, 3, 4, 1, 2), []byte{1, 101, 3, 103, 11, 111, 13, 113, 21, 121, 23, 123}},
	} {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.got, tt.want)
		}
	}

	// MXFP4: 4 rows of 64 inputs (2 blocks a row); row r's scales are
	// 120+r and 121+r (valid E8M0 exponents) and its blocks' bytes r.
	const rows, cols, g = 4, 64, 2
	var sc, bl []byte
	for r := range rows {
		sc = append(sc, byte(120+r), byte(121+r))
		bl = append(bl, bytes.Repeat([]byte{byte(r)}, g*16)...)
	}
	for _, tt := range []struct {
		first, step int
		rows        []int
	}{{0, 1, []int{0, 1, 2, 3}}, {0, 2, []int{0, 2}}, {1, 2, []int{1, 3}}} {
		got, err := pickMXFP4Rows("x", sc, bl, rows, cols, tt.first, tt.step)
		if err != nil {
			t.Fatal(err)
		}
		var wsc, wbl []byte
		for _, r := range tt.rows {
			wsc = append(wsc, sc[r*g:(r+1)*g]...)
			wbl = append(wbl, bl[r*g*16:(r+1)*g*16]...)
		}
		if len(got.Shape) != 2 || got.Shape[0] != len(tt.rows) || got.Shape[1] != cols {
			t.Errorf("rows %v: shape %v", tt.rows, got.Shape)
			continue
		}
		// scales then blocks, as tensor.MXFP4FromBlocks lays them out
		nb := len(wsc)
		if !bytes.Equal(got.Data[:nb], wsc) || !bytes.Equal(got.Data[(nb+3)&^3:], wbl) {
			t.Errorf("rows %v: data differs", tt.rows)
		}
	}
	if _, err := pickMXFP4Rows("x", []byte{120, 255}, make([]byte, 32), 1, cols, 0, 1); err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("a NaN scale: %v", err)
	}
}
