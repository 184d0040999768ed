package safetensors

import (
	"encoding/binary"
	"fmt"
	"io"
)

// NewReaderUnsized parses the header of safetensors data whose total size
// is not known up front, as over HTTP Range requests: the size is taken to
// be what the header describes. A file shorter than that fails when the
// missing bytes are read.
func NewReaderUnsized(r io.ReaderAt, name string) (*Reader, error) {
	var lenBuf [8]byte
	if err := readFull(r, lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading header length: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderBytes || n < 2 {
		return nil, fmt.Errorf("safetensors: %s: header length %d out of range", name, n)
	}
	raw := make([]byte, n)
	if err := readFull(r, raw, 8); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading %d-byte header: %w", name, n, err)
	}
	h, err := parseHeader(name, raw, 1<<50)
	if err != nil {
		return nil, err
	}
	var end int64
	for _, info := range h.infos {
		end = max(end, info.DataOffsets[1])
	}
	return NewReader(r, 8+int64(n)+end, name)
}
