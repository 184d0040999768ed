package webgputest

import (
	"os"
	"testing"

	"github.com/moderuntime/mode/webgpu"
)

// Device opens a device with o, closing it when t ends.
func Device(t testing.TB, o webgpu.Options) *webgpu.Device {
	t.Helper()
	d, err := webgpu.OpenDevice(o)
	if err != nil {
		msg := "no WebGPU adapter (" + err.Error() + "); install one with scripts/ensure-vulkan.sh (Mesa lavapipe)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(d.Close)
	return d
}
