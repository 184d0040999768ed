package e2e

import (
	"fmt"
	"net/http"
	"path"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/manifest"
)

// faultRun is one visit that may fail.
type faultRun struct {
	IDs   []int  `json:"ids"`
	Error string `json:"error"`
}

// tryRun creates an engine without any cache, generates greedily and
// unloads, reporting an error instead of failing the test.
func (b *browser) tryRun(t *testing.T, manifestURL, prompt string, n int) faultRun {
	t.Helper()
	return eval[faultRun](t, b, fmt.Sprintf(`(async () => {
		try {
			const e = await mode.create({model: %q, cache: "none"});
			const r = await e.completions.create({prompt: %q, temperature: 0, max_tokens: %d, return_token_ids: true});
			await e.unload();
			return {ids: r.choices[0].token_ids, error: ""};
		} catch (err) {
			return {ids: [], error: (err.code || "") + ": " + err.message};
		}
	})()`, manifestURL, prompt, n))
}

// inject adds a fault to the devserver (or clears them all with "").
func inject(t *testing.T, base, fault string) {
	t.Helper()
	method, body := http.MethodPost, strings.NewReader(fault)
	if fault == "" {
		method = http.MethodDelete
	}
	req, _ := http.NewRequest(method, base+"__faults", body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("injecting %q: %v %v", fault, resp, err)
	}
	resp.Body.Close()
}

// testFaults: the browser runtime survives a connection cut mid-shard
// (resuming from the last byte), a 500 (retrying), a shard corrupted once
// (refetching); it reports a shard that stays corrupt and a server that has
// gone away as clear errors, and works again once the server is back.
func testFaults(t *testing.T, b *browser, base string, log *requestLog, stories *manifest.Manifest, want []int) {
	const url = "/packs/stories260K/manifest.json"
	const prompt = "Once upon a time"
	n := len(want)
	var core, layer string
	for _, s := range stories.Shards {
		switch {
		case s.Kind == manifest.KindCore && core == "":
			core = path.Base(s.Pieces[0].File)
		case s.Kind == manifest.KindLayer && layer == "":
			layer = path.Base(s.Pieces[0].File)
		}
	}
	check := func(name string, r faultRun) {
		t.Helper()
		if r.Error != "" {
			t.Fatalf("%s: %s", name, r.Error)
		}
		if fmt.Sprint(r.IDs) != fmt.Sprint(want) {
			t.Errorf("%s: generated %v, want %v", name, r.IDs, want)
		}
	}
	t.Cleanup(func() { inject(t, base, "") })

	t.Run("cut mid-shard is recovered", func(t *testing.T) {
		mark := log.len(t)
		inject(t, base, fmt.Sprintf(`{"path": %q, "cut_after": 20000, "times": 1}`, core))
		check("cut", b.tryRun(t, url, prompt, n))
		var ranges []string
		for _, ln := range log.lines(t)[mark:] {
			if strings.HasSuffix(ln.Path, core) {
				ranges = append(ranges, ln.Range)
			}
		}
		if len(ranges) < 2 {
			t.Fatalf("core shard requests %q: want the cut request and another", ranges)
		}
		// Natively the HTTP source resumes from the last byte received
		// (runtime/shard's tests); through the browser's fetch the bytes
		// before the cut are not delivered, so the retry starts over.
		t.Logf("core shard requests after a cut at 20000 bytes: %q", ranges)
	})
	t.Run("500 is retried", func(t *testing.T) {
		mark := log.len(t)
		inject(t, base, fmt.Sprintf(`{"path": %q, "status": 500, "times": 1}`, layer))
		check("500", b.tryRun(t, url, prompt, n))
		var statuses []int
		for _, ln := range log.lines(t)[mark:] {
			if strings.HasSuffix(ln.Path, layer) {
				statuses = append(statuses, ln.Status)
			}
		}
		if len(statuses) < 2 || statuses[0] != 500 || statuses[len(statuses)-1] != 200 && statuses[len(statuses)-1] != 206 {
			t.Errorf("layer shard statuses %v: want 500, then success", statuses)
		}
	})
	t.Run("corrupted once is refetched", func(t *testing.T) {
		inject(t, base, fmt.Sprintf(`{"path": %q, "corrupt": true, "times": 1}`, layer))
		check("corrupt once", b.tryRun(t, url, prompt, n))
	})
	t.Run("corrupted always is a clear error", func(t *testing.T) {
		inject(t, base, fmt.Sprintf(`{"path": %q, "corrupt": true}`, layer))
		r := b.tryRun(t, url, prompt, n)
		inject(t, base, "")
		if !strings.Contains(r.Error, "sha256") || !strings.Contains(r.Error, "layer.0") {
			t.Errorf("a shard that stays corrupt: error %q, want one naming the shard and the hash mismatch", r.Error)
		}
	})
	t.Run("server gone is a clear error, then works again", func(t *testing.T) {
		inject(t, base, `{"down_ms": 8000}`)
		r := b.tryRun(t, url, prompt, n)
		if r.Error == "" {
			t.Fatal("loading succeeded while the server was down")
		}
		if !strings.Contains(r.Error, "unreachable") && !strings.Contains(r.Error, "manifest") && !strings.Contains(r.Error, "shard") {
			t.Errorf("server down: error %q does not say what could not be fetched", r.Error)
		}
		t.Logf("server down: %s", r.Error)
		inject(t, base, "")
		check("after the server returned", b.tryRun(t, url, prompt, n))
	})
}
