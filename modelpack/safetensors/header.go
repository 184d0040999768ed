package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/moderuntime/mode/runtime/tensor"
)

// MaxHeaderBytes bounds the JSON header. Real headers are a few megabytes
// at most; a larger length is a corrupt or hostile file, and reading it
// would only waste memory.
const MaxHeaderBytes = 100 << 20

// metadataKey is the one header key that is not a tensor.
const metadataKey = "__metadata__"

// Info describes one tensor as the header states it.
type Info struct {
	Name  string
	File  string // the file's name as given to Open or NewReader
	DType string // as stored: "F32", "F16", "BF16", "I8", "F64", ...
	Shape []int
	// DataOffsets is [begin, end) relative to the start of the data
	// section, exactly as the header's data_offsets.
	DataOffsets [2]int64
	// FileOffset is where the tensor's first byte is in the file.
	FileOffset int64
}

// Size is the tensor's byte length.
func (i Info) Size() int64 { return i.DataOffsets[1] - i.DataOffsets[0] }

// TensorDType is the tensor.DType the tensor loads as, or an error for a
// dtype this package does not load.
func (i Info) TensorDType() (tensor.DType, error) {
	if d, ok := loadable(i.DType); ok {
		return d, nil
	}
	return tensor.Invalid, fmt.Errorf("safetensors: %s: tensor %q: dtype %s is not supported (only F32, F16 and BF16 load)", i.File, i.Name, i.DType)
}

// header is a parsed and validated header.
type header struct {
	dataStart int64 // file offset of the data section
	names     []string
	infos     map[string]Info
	meta      map[string]string
}

// entry is one tensor's description in the header JSON.
type entry struct {
	DType       string
	Shape       []int64
	DataOffsets []int64
}

// readHeader reads and validates the header of a file of the given size.
// It never reads the data section.
func readHeader(file string, r io.ReaderAt, size int64) (*header, error) {
	fail := func(format string, args ...any) (*header, error) {
		return nil, fmt.Errorf("safetensors: %s: %s", file, fmt.Sprintf(format, args...))
	}
	if size < 8 {
		return fail("file is %d bytes, too short for the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if err := readFull(r, lenBuf[:], 0); err != nil {
		return fail("reading header length: %v", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	switch {
	case n > MaxHeaderBytes:
		return fail("header length %d exceeds the %d-byte limit", n, MaxHeaderBytes)
	case n > uint64(size-8):
		return fail("header length %d exceeds the %d bytes after the length field (file truncated?)", n, size-8)
	case n < 2:
		return fail("header length %d is too small for a JSON object", n)
	}
	raw := make([]byte, n)
	if err := readFull(r, raw, 8); err != nil {
		return fail("reading %d-byte header: %v", n, err)
	}
	h, err := parseHeader(file, raw, size-8-int64(n))
	if err != nil {
		return nil, err
	}
	h.dataStart = 8 + int64(n)
	for name, info := range h.infos {
		info.FileOffset = h.dataStart + info.DataOffsets[0]
		h.infos[name] = info
	}
	return h, nil
}

// parseHeader validates the header JSON against a data section of dataLen
// bytes.
func parseHeader(file string, raw []byte, dataLen int64) (*header, error) {
	fail := func(format string, args ...any) (*header, error) {
		return nil, fmt.Errorf("safetensors: %s: header: %s", file, fmt.Sprintf(format, args...))
	}
	failTensor := func(name, format string, args ...any) (*header, error) {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %s", file, name, fmt.Sprintf(format, args...))
	}
	if !utf8.Valid(raw) {
		// encoding/json would replace bad bytes with U+FFFD, so two
		// different names could silently become one.
		return fail("not valid UTF-8")
	}
	if err := checkJSON(raw); err != nil {
		var dup *duplicateKeyError
		if errors.As(err, &dup) {
			switch {
			case len(dup.path) == 0:
				return failTensor(dup.key, "name occurs more than once in the header")
			case dup.path[0] == metadataKey:
				return fail("%s: duplicate key %q", metadataKey, dup.key)
			case len(dup.path) == 1:
				return failTensor(dup.path[0], "duplicate key %q", dup.key)
			default:
				return failTensor(dup.path[0], "%v", dup)
			}
		}
		return fail("invalid JSON: %v", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return fail("not a JSON object: %v", err)
	}
	h := &header{infos: make(map[string]Info, len(top))}
	for name, msg := range top {
		if name == metadataKey {
			if err := json.Unmarshal(msg, &h.meta); err != nil {
				return fail("%s must map strings to strings: %v", metadataKey, err)
			}
			continue
		}
		e, err := decodeEntry(msg)
		if err != nil {
			return failTensor(name, "bad entry: %v", err)
		}
		info, err := checkEntry(e, dataLen)
		if err != nil {
			return failTensor(name, "%v", err)
		}
		info.Name, info.File = name, file
		h.infos[name] = info
		h.names = append(h.names, name)
	}
	slices.Sort(h.names)
	if err := checkOverlap(h); err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", file, err)
	}
	return h, nil
}

// decodeEntry decodes one tensor's description. It matches the field
// names exactly: encoding/json matches struct fields case-insensitively, so
// {"dtype": "F32", "DTYPE": "I8"} would otherwise be read as I8 although
// other readers see F32. Unknown fields are ignored, as the reference
// reader ignores them.
func decodeEntry(msg json.RawMessage) (*entry, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(msg, &fields); err != nil {
		return nil, err
	}
	e := &entry{}
	for _, f := range []struct {
		key string
		dst any
	}{{"dtype", &e.DType}, {"shape", &e.Shape}, {"data_offsets", &e.DataOffsets}} {
		if raw, ok := fields[f.key]; ok {
			if err := json.Unmarshal(raw, f.dst); err != nil {
				return nil, fmt.Errorf("%s: %w", f.key, err)
			}
		}
	}
	return e, nil
}

// checkEntry validates one tensor's dtype, shape and byte range.
func checkEntry(e *entry, dataLen int64) (Info, error) {
	var info Info
	switch {
	case e.DType == "":
		return info, errors.New("missing dtype")
	case e.Shape == nil:
		return info, errors.New("missing shape")
	case len(e.DataOffsets) != 2:
		return info, fmt.Errorf("data_offsets has %d values, want 2", len(e.DataOffsets))
	}
	bits, ok := dtypeBits(e.DType)
	if !ok {
		return info, fmt.Errorf("unknown dtype %q", e.DType)
	}
	elems, err := countElems(e.Shape)
	if err != nil {
		return info, err
	}
	if elems > math.MaxInt64/bits {
		return info, fmt.Errorf("shape %v of %s overflows the byte size", e.Shape, e.DType)
	}
	if elems*bits%8 != 0 {
		return info, fmt.Errorf("shape %v of %s is not a whole number of bytes", e.Shape, e.DType)
	}
	want := elems * bits / 8
	begin, end := e.DataOffsets[0], e.DataOffsets[1]
	switch {
	case begin < 0 || end < 0:
		return info, fmt.Errorf("negative data_offsets [%d, %d]", begin, end)
	case begin > end:
		return info, fmt.Errorf("data_offsets [%d, %d] begin after end", begin, end)
	case end > dataLen:
		return info, fmt.Errorf("data_offsets [%d, %d] run past the %d-byte data section (file truncated?)", begin, end, dataLen)
	case end-begin != want:
		return info, fmt.Errorf("data_offsets [%d, %d] hold %d bytes, but %s%v needs %d", begin, end, end-begin, e.DType, e.Shape, want)
	}
	info.DType = e.DType
	info.Shape = make([]int, len(e.Shape))
	for i, d := range e.Shape {
		info.Shape[i] = int(d) // fits: countElems bounded every dimension
	}
	info.DataOffsets = [2]int64{begin, end}
	return info, nil
}

// countElems multiplies the dimensions, rejecting negative ones and
// products that overflow. An empty shape is a scalar of one element.
func countElems(shape []int64) (int64, error) {
	n := int64(1)
	zero := false
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d > math.MaxInt {
			return 0, fmt.Errorf("dimension %d in shape %v is too large", d, shape)
		}
		if d == 0 {
			zero = true
			continue
		}
		if n > math.MaxInt64/d {
			return 0, fmt.Errorf("shape %v overflows", shape)
		}
		n *= d
	}
	if zero {
		return 0, nil
	}
	return n, nil
}

// checkOverlap rejects two tensors that share bytes, which would let a
// write through one alias another. Empty tensors occupy nothing.
func checkOverlap(h *header) error {
	byStart := make([]Info, 0, len(h.infos))
	for _, name := range h.names {
		if info := h.infos[name]; info.Size() > 0 {
			byStart = append(byStart, info)
		}
	}
	slices.SortFunc(byStart, func(a, b Info) int {
		if c := compare(a.DataOffsets[0], b.DataOffsets[0]); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for i := 1; i < len(byStart); i++ {
		prev, cur := byStart[i-1], byStart[i]
		if cur.DataOffsets[0] < prev.DataOffsets[1] {
			return fmt.Errorf("tensor %q: data_offsets %v overlap tensor %q at %v", cur.Name, cur.DataOffsets, prev.Name, prev.DataOffsets)
		}
	}
	return nil
}

func compare(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readFull fills buf from off, turning a short read into an error.
func readFull(r io.ReaderAt, buf []byte, off int64) error {
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil // ReadAt may report io.EOF alongside a full read
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d of %d bytes at offset %d: %w", n, len(buf), off, err)
}
