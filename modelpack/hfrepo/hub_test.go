package hfrepo

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
)

// hub is a test server in the hub's layout (cmd/devserver --hf is the real
// one, tested in e2e): /ORG/REPO/resolve/REV/FILE with X-Repo-Commit,
// .safetensors files redirected (302) to /cdn/FILE with X-Linked-Size.
type hub struct {
	srv         *httptest.Server
	repo        string
	commit      string
	ignoreRange bool // answer 200 with the whole file to a Range request
	mu          sync.Mutex
	files       map[string][]byte
	ranges      []string // "FILE RANGE" of every ranged request for a file's bytes
	requests    []string // "PATH RANGE" of every request
	// etagSalt is added to the CDN's ETags: the files moved to other
	// storage under the same commit.
	etagSalt string
	// alter, when set, may change a CDN answer to the ranged request for
	// name: its ETag header and body (cut or altered). It returns false
	// to answer normally.
	alter func(name, rg string, w http.ResponseWriter, body []byte) bool
}

const testCommit = "0123456789abcdef0123456789abcdef01234567"

func newHub(t *testing.T, repo string, files map[string][]byte) *hub {
	h := &hub{repo: repo, commit: testCommit, files: files}
	h.srv = httptest.NewServer(h)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests = append(h.requests, strings.TrimSpace(r.URL.Path+" "+r.Header.Get("Range")))
	if name, ok := strings.CutPrefix(r.URL.Path, "/cdn/"); ok {
		b, ok := h.files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if rg := r.Header.Get("Range"); rg != "" {
			h.ranges = append(h.ranges, name+" "+rg)
		}
		// Like the hub's CDN: the ETag is the file's sha256.
		sum := sha256.Sum256(b)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+h.etagSalt+`"`)
		if h.alter != nil && h.alter(name, r.Header.Get("Range"), w, b) {
			return
		}
		if h.ignoreRange {
			r.Header.Del("Range")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
		return
	}
	prefix := "/" + h.repo + "/resolve/"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	rev, name, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		w.Header().Set("X-Error-Code", "RepoNotFound")
		http.NotFound(w, r)
		return
	}
	if rev != "main" && rev != h.commit {
		w.Header().Set("X-Error-Code", "RevisionNotFound")
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-Repo-Commit", h.commit)
	b, ok := h.files[name]
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(name, ".safetensors") || strings.HasSuffix(name, ".bin") {
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(b)))
		http.Redirect(w, r, "/cdn/"+name, http.StatusFound)
		return
	}
	if h.ignoreRange {
		r.Header.Del("Range")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

func (h *hub) endpoint() string { return h.srv.URL }

// requestsSince returns the requests after the first n and how many
// there are in all.
func (h *hub) requestsSince(n int) ([]string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.requests[n:]...), len(h.requests)
}

func (h *hub) rangesSeen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ranges...)
}

// synthRepo writes a synthetic checkpoint and returns its directory and
// files.
func synthRepo(t *testing.T, arch string, edit func(*synth.Options)) (string, map[string][]byte) {
	t.Helper()
	o := synth.Default(arch)
	o.DType, o.Files = tensor.BF16, 2
	if edit != nil {
		edit(&o)
	}
	dir := t.TempDir()
	if err := synth.Write(dir, o); err != nil {
		t.Fatal(err)
	}
	return dir, readFiles(t, dir)
}

func readFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if files[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// rawTensor is one tensor of a hand-made safetensors file.
type rawTensor struct {
	name, dtype string
	shape       []int
	data        []byte
	end         int64 // > 0: claim this data end offset instead of the true one
}

// rawSafetensors lays out a safetensors file by hand, so a test can write
// what the writer refuses to (other dtypes, lying offsets).
func rawSafetensors(ts []rawTensor) []byte {
	hdr := map[string]any{}
	var data []byte
	for _, t := range ts {
		begin := int64(len(data))
		end := begin + int64(len(t.data))
		if t.end > 0 {
			end = t.end
		}
		hdr[t.name] = map[string]any{"dtype": t.dtype, "shape": t.shape, "data_offsets": []int64{begin, end}}
		data = append(data, t.data...)
	}
	j, _ := json.Marshal(hdr)
	for len(j)%8 != 0 {
		j = append(j, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(j)))
	return append(append(out, j...), data...)
}

// tensorsOf reads every tensor of the safetensors files in dir.
func tensorsOf(t *testing.T, dir string) []rawTensor {
	t.Helper()
	d, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var out []rawTensor
	for _, n := range d.Names() {
		x, err := d.Read(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rawTensor{name: n, dtype: strings.ToUpper(x.DType.String()), shape: x.Shape, data: x.Data})
	}
	return out
}

func readFile(dir, name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }

func httpOptions(c *http.Client) shard.HTTPOptions { return shard.HTTPOptions{Client: c} }
