package e2e

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moderuntime/mode/internal/wasmsimd"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/runtime/vec"
)

// TestSIMD checks the CPU path's SIMD128 kernels (internal/wasmsimd) in
// Chromium's own WebAssembly engine: each integer kernel against
// runtime/vec's dot products on random inputs, bit for bit, and whole
// models (q4_0, q8_0, q4_k and f16, whose f32 routers and attention use
// the float kernels) whose
// greedy tokens with the kernels, without them (the page's simd: false,
// the path of a browser without SIMD128) and natively are the same.
func TestSIMD(t *testing.T) {
	chromium := findChromium(t)
	rb := buildRuntime(t)
	packs := filepath.Join(rb.tmp, "packs")
	mixtral := filepath.Join(packs, "mixtral-q4_0")
	synthPack(t, rb.tmp, "mixtral", mixtral, nil, tensor.Q4_0)
	olmoe := filepath.Join(packs, "olmoe-q8_0")
	synthPack(t, rb.tmp, "olmoe", olmoe, func(o *synth.Options) { o.Experts = 16 }, tensor.Q8_0)
	// q4_k needs rows of whole 256-element super-blocks
	synthPack(t, rb.tmp, "mixtral", filepath.Join(packs, "mixtral-q4_k"), func(o *synth.Options) { o.Dim, o.FFN = 256, 256 }, tensor.Q4_K)
	// f16 matrices go through the f16 kernel (every pack's f32 routers
	// and all attention through the f32 and attention kernels)
	synthPack(t, rb.tmp, "mixtral", filepath.Join(packs, "mixtral-f16"), nil, tensor.F16)

	base := startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(rb.root, "web"),
		"--wasm", rb.wasm, "--models", packs)
	b := openBrowser(t, chromium, base+"index.html")

	t.Run("kernels equal the Go dot products", func(t *testing.T) { simdKernels(t, b) })

	for _, name := range []string{"mixtral-q4_0", "olmoe-q8_0", "mixtral-q4_k", "mixtral-f16"} {
		t.Run(name+" greedy tokens equal with and without SIMD", func(t *testing.T) {
			const prompt, n = "the cat sat on", 24
			want, _, _ := native(t, filepath.Join(packs, name), prompt, n)
			url := "/packs/" + name + "/manifest.json"
			var got [2]simdRun
			for i, simd := range []bool{true, false} {
				got[i] = eval[simdRun](t, b, fmt.Sprintf(`(async () => {
					const e = await mode.create({model: %q, backend: "cpu", cache: "none", simd: %v});
					const r = await e.completions.create({prompt: %q, temperature: 0, max_tokens: %d, return_token_ids: true});
					const stats = await e.stats();
					await e.unload();
					return {ids: r.choices[0].token_ids, kernels: e.info.kernels, note: e.info.kernelsNote ?? "", stats};
				})()`, url, simd, prompt, n))
				t.Logf("simd %v: kernels %s (%s); prefill %.0f tok/s, decode %.0f tok/s", simd, got[i].Kernels, got[i].Note, got[i].Stats.Prefill, got[i].Stats.Decode)
			}
			if got[0].Kernels != wasmsimd.ImplSIMD {
				t.Errorf("with SIMD: kernels %q (%s), want %q", got[0].Kernels, got[0].Note, wasmsimd.ImplSIMD)
			}
			if got[1].Kernels != wasmsimd.ImplGo || got[1].Note == "" {
				t.Errorf("simd: false: kernels %q, note %q; want %q and a reason", got[1].Kernels, got[1].Note, wasmsimd.ImplGo)
			}
			for _, r := range got {
				if !slices.Equal(r.IDs, want) {
					t.Errorf("%s kernels generated %v\n             native %v", r.Kernels, r.IDs, want)
				}
			}
		})
	}
}

type simdRun struct {
	IDs     []int  `json:"ids"`
	Kernels string `json:"kernels"`
	Note    string `json:"note"`
	Stats   stats  `json:"stats"`
}

// simdKernels runs the kernel module as the worker does (importing a
// memory as go.mem, here one of its own) on an image of random buffers and
// compares every output with vec's.
func simdKernels(t *testing.T, b *browser) {
	r := rand.New(rand.NewPCG(3, 4))
	var img []byte
	put := func(p []byte, skew int) int {
		at := len(img) + skew
		img = append(img, make([]byte, skew)...)
		img = append(img, p...)
		for len(img)%16 != 0 {
			img = append(img, 0)
		}
		return at
	}
	type call struct {
		Kernel string `json:"kernel"`
		Args   []int  `json:"args"`
		check  func(out []byte) []string
	}
	var calls []call
	for _, kc := range []struct {
		name string
		qb   int
		dot  func(wd, wq []byte, xd []float32, xq []int16) float32
	}{{wasmsimd.KernelQ8_0, 32, vec.DotQ8_0}, {wasmsimd.KernelQ4_0, 16, vec.DotQ4_0}} {
		for _, sz := range [][3]int{{1, 1, 1}, {3, 5, 2}, {4, 2, 1}, {7, 16, 3}, {9, 11, 1}, {17, 44, 2}, {5, 44, 9}, {2, 7, 4}} {
			rows, nb, trows := sz[0], sz[1], sz[2]
			wd := make([]byte, 2*rows*nb)
			for i := 0; i < len(wd); i += 2 {
				binary.LittleEndian.PutUint16(wd[i:], uint16(r.IntN(0x7c00))|uint16(r.IntN(2))<<15)
			}
			wq := make([]byte, kc.qb*rows*nb)
			for i := range wq {
				wq[i] = byte(r.IntN(256))
			}
			xd := make([]float32, trows*nb)
			xdb := make([]byte, 4*len(xd))
			for i := range xd {
				xd[i] = float32(r.NormFloat64())
				binary.LittleEndian.PutUint32(xdb[4*i:], math.Float32bits(xd[i]))
			}
			xq := make([]int16, 32*trows*nb)
			xqb := make([]byte, 2*len(xq))
			for i := range xq {
				xq[i] = int16(r.IntN(65535) - 32767)
				binary.LittleEndian.PutUint16(xqb[2*i:], uint16(xq[i]))
			}
			ds := rows + 1
			pdst := put(make([]byte, 4*ds*trows), 0)
			// the kernels take the scales as f32, decoded as the engine
			// decodes them (no NaNs here, where amd64's F16C may differ)
			wf := make([]float32, rows*nb)
			vec.HalfToFloat(wf, wd)
			wfb := make([]byte, 4*len(wf))
			for i, v := range wf {
				binary.LittleEndian.PutUint32(wfb[4*i:], math.Float32bits(v))
			}
			args := []int{pdst, ds, put(wfb, 4), put(wq, 1), put(xdb, 4), put(xqb, 2), rows, nb, trows}
			name := fmt.Sprintf("%s %d rows × %d blocks × %d", kc.name, rows, nb, trows)
			calls = append(calls, call{Kernel: kc.name, Args: args, check: func(out []byte) []string {
				var bad []string
				for i := range rows {
					for tr := range trows {
						want := math.Float32bits(kc.dot(wd[2*nb*i:], wq[kc.qb*nb*i:], xd[nb*tr:nb*(tr+1)], xq[32*nb*tr:]))
						if got := binary.LittleEndian.Uint32(out[pdst+4*(tr*ds+i):]); got != want {
							bad = append(bad, fmt.Sprintf("%s: [%d][%d] Chromium %#x, Go %#x", name, tr, i, got, want))
						}
					}
				}
				return bad
			}})
		}
	}
	for _, sz := range [][3]int{{1, 8, 1}, {3, 16, 2}, {6, 24, 3}} {
		rows, nb, trows := sz[0], sz[1], sz[2]
		rnd := func(n, lim int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.IntN(lim))
			}
			return b
		}
		dm := make([]byte, 4*nb/8*rows)
		for i := 0; i < len(dm); i += 2 {
			binary.LittleEndian.PutUint16(dm[i:], uint16(r.IntN(0x7c00))|uint16(r.IntN(2))<<15)
		}
		sc, mn, qs := rnd(nb*rows, 64), rnd(nb*rows, 64), rnd(16*nb*rows, 256)
		xd, g := make([]float32, trows*nb), make([]float32, trows*nb)
		xdb, gb := make([]byte, 4*len(xd)), make([]byte, 4*len(g))
		for i := range xd {
			xd[i], g[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
			binary.LittleEndian.PutUint32(xdb[4*i:], math.Float32bits(xd[i]))
			binary.LittleEndian.PutUint32(gb[4*i:], math.Float32bits(g[i]))
		}
		xq := make([]int16, 32*trows*nb)
		xqb := make([]byte, 2*len(xq))
		for i := range xq {
			xq[i] = int16(r.IntN(65535) - 32767)
			binary.LittleEndian.PutUint16(xqb[2*i:], uint16(xq[i]))
		}
		ds := rows + 1
		pdst := put(make([]byte, 4*ds*trows), 0)
		args := []int{pdst, ds, put(dm, 2), put(sc, 1), put(mn, 3), put(qs, 1), put(xdb, 4), put(gb, 8), put(xqb, 2), rows, nb, trows}
		name := fmt.Sprintf("q4_k %d rows × %d sub-blocks × %d", rows, nb, trows)
		calls = append(calls, call{Kernel: wasmsimd.KernelQ4_K, Args: args, check: func(out []byte) []string {
			var bad []string
			for i := range rows {
				for tr := range trows {
					want := math.Float32bits(vec.DotQ4_K(dm[4*nb/8*i:], sc[nb*i:], mn[nb*i:], qs[16*nb*i:], xd[nb*tr:nb*(tr+1)], g[nb*tr:nb*(tr+1)], xq[32*nb*tr:]))
					if got := binary.LittleEndian.Uint32(out[pdst+4*(tr*ds+i):]); got != want {
						bad = append(bad, fmt.Sprintf("%s: [%d][%d] Chromium %#x, Go %#x", name, tr, i, got, want))
					}
				}
			}
			return bad
		}})
	}
	mod := base64.StdEncoding.EncodeToString(wasmsimd.Module("go", "mem"))
	js := fmt.Sprintf(`(async () => {
		const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
		const img = b64(%q);
		const mem = new WebAssembly.Memory({initial: Math.ceil(img.length / 65536) + 1});
		new Uint8Array(mem.buffer).set(img);
		const {instance} = await WebAssembly.instantiate(b64(%q), {go: {mem}});
		for (const c of %s) instance.exports[c.kernel](...c.args);
		let s = "";
		for (const v of new Uint8Array(mem.buffer, 0, img.length)) s += String.fromCharCode(v);
		return btoa(s);
	})()`, base64.StdEncoding.EncodeToString(img), mod, mustJSON(t, calls))
	out, err := base64.StdEncoding.DecodeString(eval[string](t, b, js))
	if err != nil || len(out) != len(img) {
		t.Fatalf("the page returned %d bytes (%v), want %d", len(out), err, len(img))
	}
	n := 0
	for _, c := range calls {
		bad := c.check(out)
		for _, s := range bad[:min(len(bad), 3)] {
			t.Error(s)
		}
		n++
	}
	t.Logf("%d kernel calls over %d bytes compared", n, len(img))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
