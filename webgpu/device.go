package webgpu

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cogentcore/webgpu/wgpu"
)

// Options configures a Device.
type Options struct {
	// MaxBinding caps the bytes of one storage binding below the
	// adapter's limit; weights larger than it are split into pages. Tests
	// lower it to exercise paging. 0 means the adapter's limit.
	MaxBinding uint64
	// Timeout bounds every wait for the device; 0 means one minute.
	Timeout time.Duration
	// NoF16 keeps f16 weights on the f32 path (widened with
	// unpack2x16float) even when the adapter has shader-f16; the feature is
	// then not requested.
	NoF16 bool
	// NoSubgroups keeps matvec's lanes meeting in workgroup memory even
	// when the adapter has the subgroups feature; the feature is then not
	// requested. The environment variable MODE_WEBGPU_SUBGROUPS=off does
	// the same for every device (tests, benchmarks, `mode run`).
	NoSubgroups bool
}

// subgroupsOff says whether subgroups are turned off for o, by the option
// or by MODE_WEBGPU_SUBGROUPS=off in the environment.
func subgroupsOff(o Options) bool {
	return o.NoSubgroups || os.Getenv("MODE_WEBGPU_SUBGROUPS") == "off"
}

// Device is an acquired WebGPU device and what every backend on it shares:
// its limits, its pipelines and its error state.
type Device struct {
	inst    *wgpu.Instance
	adapter *wgpu.Adapter
	dev     *wgpu.Device
	queue   *wgpu.Queue

	// MaxBinding is the largest storage binding, MaxBuffer the largest
	// buffer, MaxInvocations the most invocations per workgroup.
	MaxBinding, MaxBuffer uint64
	MaxInvocations        uint32
	// MaxUniform is the largest uniform binding and UniformAlign the
	// alignment of a uniform binding's offset (matvec's x: Spec.XU).
	MaxUniform, UniformAlign uint64
	// F16 says f16 weights are multiplied in f16 (shaders.Spec.F16): the
	// device has shader-f16 and its WGSL compiler compiled the f16 kernel.
	// Never under GOOS=js, where the binding cannot request features.
	// F16Note says why not, when the adapter was asked for it.
	F16     bool
	F16Note string
	// Subgroups says matvec's lanes meet through subgroup operations
	// (shaders.Spec.Subgroups): the device has the subgroups feature, its
	// WGSL compiler compiled them, SubgroupMin, the smallest subgroup the
	// adapter runs, is known, and (once New has run on the device) a check
	// matvec through them gave exact sums. SubgroupsNote says why not, or
	// that they were turned off.
	Subgroups     bool
	SubgroupMin   int
	SubgroupsNote string
	// Adapter describes the adapter the device runs on.
	Adapter AdapterInfo

	timeout time.Duration
	pipes   pipelineCache

	mu     sync.Mutex
	lost   error  // set when the device reports itself lost
	nextID uint32 // the id of the next buffer
}

// AdapterInfo is what the platform tells of an adapter.
type AdapterInfo struct {
	// Name is the adapter's most specific description (device,
	// description, architecture or vendor, whichever is known).
	Name string
	// Software says the adapter runs on the CPU: a fallback adapter, or a
	// known software renderer (SwiftShader, lavapipe/llvmpipe, WARP).
	// The CPU backend is faster than WebGPU on such an adapter.
	Software bool
}

// softwareRenderers are substrings of the names software adapters give.
var softwareRenderers = []string{"swiftshader", "llvmpipe", "lavapipe", "softpipe", "microsoft basic render", "warp"}

// isHexID says whether s is a bare PCI-style id such as "0x10005": what
// wgpu-native v22 reports as the name and vendor of lavapipe, which names
// nothing.
func isHexID(s string) bool {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok || h == "" {
		return false
	}
	return strings.Trim(h, "0123456789abcdefABCDEF") == ""
}

// adapterInfo describes an adapter from what the platform reports.
func adapterInfo(fallback bool, names ...string) AdapterInfo {
	info := AdapterInfo{Software: fallback}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || isHexID(n) {
			continue
		}
		if info.Name == "" {
			info.Name = n
		}
		low := strings.ToLower(n)
		for _, sw := range softwareRenderers {
			if strings.Contains(low, sw) {
				info.Software = true
			}
		}
	}
	if info.Name == "" {
		info.Name = "unnamed adapter"
	}
	return info
}

// ErrNoAdapter is returned by Open when no WebGPU adapter is available.
var ErrNoAdapter = errors.New("webgpu: no adapter")

// OpenDevice acquires the first adapter and a device with the adapter's limits.
func OpenDevice(o Options) (*Device, error) {
	inst := wgpu.CreateInstance(nil)
	if inst == nil {
		return nil, ErrNoAdapter
	}
	ad, err := inst.RequestAdapter(&wgpu.RequestAdapterOptions{PowerPreference: wgpu.PowerPreferenceHighPerformance})
	if err != nil || ad == nil {
		inst.Release()
		return nil, fmt.Errorf("%w: %v", ErrNoAdapter, err)
	}
	d := &Device{inst: inst, adapter: ad, timeout: o.Timeout}
	if d.timeout <= 0 {
		d.timeout = time.Minute
	}
	if err := d.request(!o.NoF16, !subgroupsOff(o)); err != nil {
		ad.Release()
		inst.Release()
		return nil, err
	}
	d.queue = d.dev.GetQueue()
	lim := d.dev.GetLimits().Limits
	d.MaxBinding, d.MaxBuffer = lim.MaxStorageBufferBindingSize, lim.MaxBufferSize
	d.MaxInvocations = lim.MaxComputeInvocationsPerWorkgroup
	d.MaxUniform, d.UniformAlign = lim.MaxUniformBufferBindingSize, uint64(lim.MinUniformBufferOffsetAlignment)
	if d.MaxUniform == 0 {
		d.MaxUniform = 64 << 10 // WebGPU's default limits
	}
	if d.UniformAlign == 0 || d.UniformAlign&(d.UniformAlign-1) != 0 {
		d.UniformAlign = 256
	}
	if d.MaxBuffer > 0 && d.MaxBinding > d.MaxBuffer {
		d.MaxBinding = d.MaxBuffer
	}
	if o.MaxBinding > 0 && (d.MaxBinding == 0 || o.MaxBinding < d.MaxBinding) {
		d.MaxBinding = o.MaxBinding
	}
	if d.MaxBinding == 0 {
		d.MaxBinding = 128 << 20 // WebGPU's default limit
	}
	if d.MaxBuffer == 0 {
		d.MaxBuffer = 256 << 20
	}
	d.pipes = pipelineCache{m: map[string]*pipeline{}}
	return d, nil
}

// setLost records a device loss; every later wait and Sync reports it.
func (d *Device) setLost(msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lost == nil {
		d.lost = fmt.Errorf("webgpu: device lost: %s", msg)
	}
}

func (d *Device) lostErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lost
}

// Close releases the device.
func (d *Device) Close() {
	d.pipes.release()
	d.queue.Release()
	d.dev.Release()
	d.adapter.Release()
	d.inst.Release()
}

// newBuffer creates a buffer, refusing sizes beyond the device's limit
// with an error rather than leaving the device to fail.
func (d *Device) newBuffer(label string, size uint64, usage wgpu.BufferUsage) (*buffer, error) {
	size = (max(size, 4) + 3) &^ 3
	if size > d.MaxBuffer {
		return nil, fmt.Errorf("webgpu: buffer %s of %d bytes exceeds the device's %d", label, size, d.MaxBuffer)
	}
	b, err := d.dev.CreateBuffer(&wgpu.BufferDescriptor{Label: label, Size: size, Usage: usage})
	if err != nil {
		return nil, fmt.Errorf("webgpu: creating buffer %s (%d bytes): %w", label, size, err)
	}
	d.mu.Lock()
	d.nextID++
	id := d.nextID
	d.mu.Unlock()
	return &buffer{Buffer: b, size: size, usage: usage, id: id}, nil
}

// buffer is a device buffer with the size and usage it was made with
// (which the js binding cannot report), and an id unique on its device
// that names it in the MoE kernels' expert table.
type buffer struct {
	*wgpu.Buffer
	size  uint64
	usage wgpu.BufferUsage
	id    uint32
}

// wait polls the device until done reports true, the device is lost or
// the timeout passes. wgpu-native's blocking poll gives up after about
// five seconds and leaves later maps wrong, so it polls without blocking
// and sleeps briefly in between.
func (d *Device) wait(what string, done func() bool) error {
	deadline := time.Now().Add(d.timeout)
	sleep := 50 * time.Microsecond
	for !done() {
		if err := d.lostErr(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webgpu: %s: no answer from the device in %v", what, d.timeout)
		}
		d.dev.Poll(false, nil)
		if done() {
			break
		}
		time.Sleep(sleep)
		sleep = min(2*sleep, 2*time.Millisecond)
	}
	return d.lostErr()
}

// checkWrite refuses a host-to-device write that WebGPU would reject:
// out of the buffer's bounds, or a size or offset that is not a multiple
// of 4. Checking here turns what would be a validation error (a lost
// device under the browser, a panic from a JS exception) into an error.
func checkWrite(b *buffer, off uint64, n int) error {
	if off%4 != 0 || n%4 != 0 {
		return fmt.Errorf("webgpu: writing %d bytes at %d: offset and size must be multiples of 4", n, off)
	}
	if off > b.size || uint64(n) > b.size-off {
		return fmt.Errorf("webgpu: writing %d bytes at %d overruns a %d-byte buffer", n, off, b.size)
	}
	return nil
}
