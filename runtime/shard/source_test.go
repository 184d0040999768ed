package shard

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDir(t *testing.T) {
	root := t.TempDir()
	data := testData(1000, 20)
	if err := os.MkdirAll(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sub", "a.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file    string
		off, n  int64
		want    []byte
		wantErr string
	}{
		{file: "sub/a.bin", off: 10, n: 20, want: data[10:30]},
		{file: "sub/a.bin", off: 900, n: -1, want: data[900:]},
		{file: "sub/a.bin", off: 0, n: -1, want: data},
		{file: "sub/a.bin", off: 1000, n: -1, want: []byte{}},
		{file: "sub/../sub/a.bin", off: 0, n: 1, want: data[:1]},
		{file: "sub/a.bin", off: 990, n: 20, wantErr: "bytes [990, 1010) wanted but the file has 1000"},
		{file: "sub/a.bin", off: 2000, n: -1, wantErr: "bytes [2000, 2000) wanted but the file has 1000"},
		{file: "sub/a.bin", off: -1, n: 1, wantErr: "negative offset -1"},
		{file: "sub/missing.bin", off: 0, n: 1, wantErr: "no such file"},
		{file: "../a.bin", wantErr: "escapes the directory"},
		{file: "sub/../../a.bin", wantErr: "escapes the directory"},
		{file: "/etc/passwd", wantErr: "escapes the directory"},
		{file: "", wantErr: "path is empty"},
		{file: "https://example.com/a.bin", wantErr: "needs an HTTP source"},
	}
	d := NewDir(root)
	for _, tt := range tests {
		got, err := d.Read(t.Context(), tt.file, tt.off, tt.n)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Read(%q, %d, %d): error %v, want one containing %q", tt.file, tt.off, tt.n, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Read(%q, %d, %d): %v", tt.file, tt.off, tt.n, err)
		} else if !bytes.Equal(got, tt.want) {
			t.Errorf("Read(%q, %d, %d): got %d bytes, not the %d wanted", tt.file, tt.off, tt.n, len(got), len(tt.want))
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := d.Read(ctx, "sub/a.bin", 0, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Read with a canceled context: %v", err)
	}
}
