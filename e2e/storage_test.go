package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/tensor"
)

// storageRun is one visit with a persistent cache.
type storageRun struct {
	IDs   []int  `json:"ids"`
	Cache string `json:"cache"`
	Stats struct {
		BytesFetched     int64 `json:"bytesFetched"`
		BytesFromCache   int64 `json:"bytesFromCache"`
		StorageEvictions int   `json:"storageEvictions"`
		StorageSkipped   int   `json:"storageSkipped"`
		StorageBytes     int64 `json:"storageBytes"`
	} `json:"stats"`
}

// storageVisit creates an engine with cache and storageBudgetMB, generates
// greedily and unloads.
func (b *browser) storageVisit(t *testing.T, manifestURL, cache string, budgetMB float64, prompt string, n int) storageRun {
	t.Helper()
	r := eval[storageRun](t, b, fmt.Sprintf(`(async () => {
		const e = await mode.create({model: %q, cache: %q, storageBudgetMB: %v, backend: "cpu"});
		const r = await e.completions.create({prompt: %q, temperature: 0, max_tokens: %d, return_token_ids: true});
		const stats = await e.stats();
		await e.unload();
		return {ids: r.choices[0].token_ids, cache: e.info.cache, stats};
	})()`, manifestURL, cache, budgetMB, prompt, n))
	t.Logf("cache %s, budget %v MB: %+v", cache, budgetMB, r.Stats)
	return r
}

// storedHashes lists the content hashes the page's origin holds in cache.
func (b *browser) storedHashes(t *testing.T, cache string) []string {
	t.Helper()
	js := `(async () => {
		const root = await navigator.storage.getDirectory();
		const out = [];
		try {
			const dir = await (await root.getDirectoryHandle("mode-shards-v1")).getDirectoryHandle("sha256");
			for await (const name of dir.keys()) out.push(name);
		} catch (e) { if (e.name !== "NotFoundError") throw e; }
		return out;
	})()`
	if cache == "cache-storage" {
		js = `(async () => {
			const c = await caches.open("mode-shards-v1");
			return (await c.keys()).map((r) => new URL(r.url).pathname).
				filter((p) => p.includes("/sha256/")).map((p) => p.split("/").pop());
		})()`
	}
	return eval[[]string](t, b, js)
}

// clearStore empties cache for the page's origin.
func (b *browser) clearStore(t *testing.T, cache string) {
	t.Helper()
	js := `(async () => {
		const root = await navigator.storage.getDirectory();
		try { await root.removeEntry("mode-shards-v1", {recursive: true}); } catch (e) { if (e.name !== "NotFoundError") throw e; }
		return true;
	})()`
	if cache == "cache-storage" {
		js = `caches.delete("mode-shards-v1")`
	}
	eval[bool](t, b, js)
}

// TestStorage checks persistence across visits in the Origin Private File
// System, and, there and in Cache Storage, that a storage budget too small
// for one visit's experts keeps the output right, evicts experts of an
// earlier visit for the current one, and that the next visit downloads
// exactly the shards that are not stored.
func TestStorage(t *testing.T) {
	chromium := findChromium(t)
	rb := buildRuntime(t)
	packs := filepath.Join(rb.tmp, "packs")
	olmoe := filepath.Join(packs, "olmoe")
	synthPack(t, rb.tmp, "olmoe", olmoe, func(o *synth.Options) { o.Experts = 64 }, tensor.Q4_0)
	logFile := filepath.Join(rb.tmp, "requests.log")
	base := startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(rb.root, "web"),
		"--wasm", rb.wasm, "--models", packs, "--log", logFile)
	b := openBrowser(t, chromium, base+"index.html")
	log := &requestLog{path: logFile}

	const url = "/packs/olmoe/manifest.json"
	const prompt = "the cat sat on"
	const n = 8
	want, routed, predicted := native(t, olmoe, prompt, n)
	m := readManifest(t, olmoe)
	all := shardPaths(m, "/packs/olmoe/", func(manifest.Shard) bool { return true })
	needed := shardPaths(m, "/packs/olmoe/", func(s manifest.Shard) bool {
		k := [2]int{s.Layer, s.Expert}
		return s.Kind != manifest.KindExpert || routed[k] || predicted[k]
	})
	pathOf := map[string]string{} // content hash → shard path
	var upfront, expertSize int64
	for _, s := range m.Shards {
		pathOf[s.SHA256] = "/packs/olmoe/" + s.Pieces[0].File
		if s.Kind == manifest.KindExpert {
			expertSize = max(expertSize, s.Size)
		} else {
			upfront += s.Size
		}
	}
	upfront += m.Tokenizer.Size + m.Tokenizer.ConfigSize
	// Room for the up-front shards and three experts: fewer than one
	// visit routes to.
	const room = 3
	budgetMB := float64(upfront+room*expertSize) / (1 << 20)
	if experts := len(needed) - (len(m.Shards) - countExperts(m)); experts <= room+2 {
		t.Fatalf("a visit needs %d experts: a budget of %d proves little", experts, room)
	}

	t.Run("opfs: second visit fetches no shard", func(t *testing.T) {
		mark := log.len(t)
		first := b.storageVisit(t, url, "opfs", 0, prompt, n)
		checkIDs(t, first.IDs, want)
		if first.Cache != "opfs" {
			t.Fatalf("engine.info.cache is %q, want opfs", first.Cache)
		}
		if f := log.shardsSince(t, mark, all); !slices.Equal(f, needed) {
			t.Errorf("first visit fetched %v, want %v", f, needed)
		}
		shards := 0
		for _, h := range b.storedHashes(t, "opfs") {
			if pathOf[h] != "" {
				shards++
			}
		}
		if shards != len(needed) {
			t.Errorf("OPFS holds %d shards after the first visit, want the %d fetched", shards, len(needed))
		}
		mark = log.len(t)
		again := b.storageVisit(t, url, "opfs", 0, prompt, n)
		checkIDs(t, again.IDs, want)
		if f := log.shardsSince(t, mark, all); len(f) != 0 {
			t.Errorf("second visit fetched %d shards, want none: %v", len(f), f)
		}
		if again.Stats.BytesFetched != 0 || again.Stats.BytesFromCache == 0 {
			t.Errorf("second visit: %d bytes fetched, %d from the cache; want 0 and more than 0", again.Stats.BytesFetched, again.Stats.BytesFromCache)
		}
	})

	// A second prompt routes to other experts, which push out those of the
	// first prompt: the budget evicts across visits, never within one.
	const prompt2 = "a dog ran to"
	want2, routed2, predicted2 := native(t, olmoe, prompt2, n)
	needed2 := shardPaths(m, "/packs/olmoe/", func(s manifest.Shard) bool {
		k := [2]int{s.Layer, s.Expert}
		return s.Kind != manifest.KindExpert || routed2[k] || predicted2[k]
	})
	for _, cache := range []string{"opfs", "cache-storage"} {
		t.Run(cache+": a tight storage budget evicts cold experts", func(t *testing.T) {
			b.clearStore(t, cache)
			limit := int64(budgetMB * (1 << 20))
			first := b.storageVisit(t, url, cache, budgetMB, prompt, n)
			checkIDs(t, first.IDs, want)
			if first.Stats.StorageSkipped == 0 || first.Stats.StorageBytes > limit {
				t.Errorf("budget %d bytes, first visit: %d skipped, %d bytes stored; want skips, within the budget", limit, first.Stats.StorageSkipped, first.Stats.StorageBytes)
			}
			second := b.storageVisit(t, url, cache, budgetMB, prompt2, n)
			checkIDs(t, second.IDs, want2)
			st := second.Stats
			if st.StorageEvictions == 0 || st.StorageSkipped == 0 || st.StorageBytes > limit {
				t.Errorf("budget %d bytes, second prompt: %d evicted, %d skipped, %d bytes stored; want evictions and skips, within the budget", limit, st.StorageEvictions, st.StorageSkipped, st.StorageBytes)
			}

			stored := map[string]bool{}
			for _, h := range b.storedHashes(t, cache) {
				stored[pathOf[h]] = true
			}
			var gone []string // needed but not stored: what the next visit downloads
			for _, s := range m.Shards {
				p := "/packs/olmoe/" + s.Pieces[0].File
				if !slices.Contains(needed2, p) || stored[p] {
					continue
				}
				gone = append(gone, p)
				if s.Kind != manifest.KindExpert {
					t.Errorf("%s shard %s was not kept", s.Kind, p)
				}
			}
			sort.Strings(gone)
			if len(gone) == 0 || len(gone) != st.StorageSkipped {
				t.Errorf("%d shards of the second prompt are not stored; the stats say %d skipped", len(gone), st.StorageSkipped)
			}

			mark := log.len(t)
			again := b.storageVisit(t, url, cache, budgetMB, prompt2, n)
			checkIDs(t, again.IDs, want2)
			if f := log.shardsSince(t, mark, all); !slices.Equal(f, gone) {
				t.Errorf("visiting again fetched %d shards %v,\nwant only the %d not stored: %v", len(f), f, len(gone), gone)
			}
		})
	}
}

func checkIDs(t *testing.T, got, want []int) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("browser generated %v\n          native %v", got, want)
	}
}
