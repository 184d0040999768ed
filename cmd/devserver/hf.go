package main

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// The --hf layout imitates the Hugging Face Hub's file URLs, so that a
// client of `hf:ORG/REPO` can be tested against it. What the hub does comes
// from its public documentation and its own client, huggingface_hub:
//
//   - Files are at ENDPOINT/ORG/REPO/resolve/REVISION/FILE, REVISION a
//     branch, tag or commit hash (huggingface_hub file_download.py,
//     hf_hub_url and HUGGINGFACE_CO_URL_TEMPLATE; huggingface.co/docs/xet/file-id,
//     "resolve URL").
//   - "The resolved address can either be a huggingface.co-hosted url, or a
//     link to Cloudfront (a CDN) for large files" (hf_hub_url's docstring):
//     a file kept in git is answered directly, an LFS file with a redirect
//     to a content-addressed CDN URL; the xet docs say "The resolve URL will
//     return a 302" (huggingface.co/docs/xet/file-id). The hub answers a
//     renamed repository with a relative redirect, which clients follow
//     (file_download.py, _request_wrapper, follow_relative_redirects).
//   - The resolve answer carries X-Repo-Commit (the commit the revision
//     resolved to), and for LFS files X-Linked-Etag (the file's sha256) and
//     X-Linked-Size (its size), which clients prefer over ETag and
//     Content-Length because those describe the redirect, not the file
//     (file_download.py, get_hf_file_metadata and HfFileMetadata).
//   - "An object's ETag is: its git-sha1 if stored in git, or its sha256 if
//     stored in git-lfs" (hf_hub_url's docstring).
//   - Errors carry X-Error-Code (RepoNotFound, RevisionNotFound,
//     EntryNotFound), which huggingface_hub's hf_raise_for_status reads.
//
// The CDN side is served here under /hf-cdn/SHA256/FILE: content-addressed,
// so cached forever, with Range and ETag like the CloudFront answers.

// hfPrefix and hfCDNPrefix are where the layout lives: the endpoint to give
// clients is http://HOST/hf.
const (
	hfPrefix    = "/hf/"
	hfCDNPrefix = "/hf-cdn/"
)

// hfExposed are the headers a cross-origin client of the layout reads.
const hfExposed = "Content-Range, Content-Length, ETag, Accept-Ranges, Content-Encoding, Location, X-Repo-Commit, X-Linked-Etag, X-Linked-Size, X-Error-Code"

// lfsFile reports whether the hub would keep name in LFS: the extensions
// its default .gitattributes tracks that models use, and anything large.
func lfsFile(name string, size int64) bool {
	switch path.Ext(name) {
	case ".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".msgpack":
		return true
	}
	return size > 10<<20
}

// hubFile is what the layout knows of one file of a repository.
type hubFile struct {
	name           string // relative to the repository
	size           int64
	mod            time.Time
	sha256, gitSHA string
}

// hubRepos hashes the files of DIR/ORG/REPO once per (size, mtime), so the
// commit of a repository is computed from its contents: change a file and
// the commit, hence every URL a client caches by, changes.
type hubRepos struct {
	root *os.Root
	mu   sync.Mutex
	seen map[string]hubFile // "ORG/REPO/FILE" -> its hashes at (size, mod)
	cdn  map[string]string  // sha256 -> "ORG/REPO/FILE"
}

// repo lists the regular files of ORG/REPO (the top level, the layout of
// the checkpoints mode reads) with their hashes, and its commit.
func (h *hubRepos) repo(org, repo string) ([]hubFile, string, error) {
	dir := org + "/" + repo
	entries, err := fs.ReadDir(h.root.FS(), dir)
	if err != nil {
		return nil, "", err
	}
	var files []hubFile
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, "", err
		}
		f, err := h.hashed(dir, e.Name(), fi)
		if err != nil {
			return nil, "", err
		}
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	c := sha1.New()
	for _, f := range files {
		fmt.Fprintf(c, "%s %s\n", f.name, f.sha256)
	}
	return files, hex.EncodeToString(c.Sum(nil)), nil
}

func (h *hubRepos) hashed(dir, name string, fi fs.FileInfo) (hubFile, error) {
	key := dir + "/" + name
	h.mu.Lock()
	f, ok := h.seen[key]
	h.mu.Unlock()
	if ok && f.size == fi.Size() && f.mod.Equal(fi.ModTime()) {
		return f, nil
	}
	r, err := h.root.Open(key)
	if err != nil {
		return f, err
	}
	defer r.Close()
	s256, s1 := sha256.New(), sha1.New()
	fmt.Fprintf(s1, "blob %d\x00", fi.Size()) // git's blob id
	if _, err := io.Copy(io.MultiWriter(s256, s1), r); err != nil {
		return f, err
	}
	f = hubFile{name: name, size: fi.Size(), mod: fi.ModTime(), sha256: hex.EncodeToString(s256.Sum(nil)), gitSHA: hex.EncodeToString(s1.Sum(nil))}
	h.mu.Lock()
	h.seen[key] = f
	h.cdn[f.sha256] = key
	h.mu.Unlock()
	return f, nil
}

// hubError answers like the hub does for a missing repo, revision or file.
func hubError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("X-Error-Code", code)
	w.Header().Set("X-Error-Message", msg)
	http.Error(w, msg, http.StatusNotFound)
}

// serveHub answers /hf/ORG/REPO/resolve/REVISION/FILE.
func (s *server) serveHub(w http.ResponseWriter, r *http.Request, rest string) {
	w.Header().Set("Access-Control-Expose-Headers", hfExposed)
	parts := strings.SplitN(rest, "/", 5)
	if len(parts) != 5 || parts[2] != "resolve" || parts[0] == "" || parts[1] == "" || parts[3] == "" {
		hubError(w, "EntryNotFound", "want /hf/ORG/REPO/resolve/REVISION/FILE")
		return
	}
	org, repo, rev, name := parts[0], parts[1], parts[3], parts[4]
	if _, ok := cleanName(org + "/" + repo + "/" + name); !ok || strings.Contains(name, "/") {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	files, commit, err := s.hub.repo(org, repo)
	if err != nil {
		hubError(w, "RepoNotFound", "Repository Not Found")
		return
	}
	if rev != "main" && rev != commit {
		hubError(w, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	var f *hubFile
	for i := range files {
		if files[i].name == name {
			f = &files[i]
		}
	}
	h := w.Header()
	h.Set("X-Repo-Commit", commit)
	if f == nil {
		hubError(w, "EntryNotFound", "Entry not found")
		return
	}
	if lfsFile(f.name, f.size) {
		h.Set("X-Linked-Etag", `"`+f.sha256+`"`)
		h.Set("X-Linked-Size", fmt.Sprint(f.size))
		h.Set("ETag", `"`+f.sha256+`"`)
		h.Set("Location", hfCDNPrefix+f.sha256+"/"+f.name)
		h.Set("Cache-Control", "no-cache") // main moves; the CDN URL never does
		w.WriteHeader(http.StatusFound)
		return
	}
	h.Set("ETag", `"`+f.gitSHA+`"`)
	s.serveFile(w, r, s.hub.root, org+"/"+repo+"/"+f.name, "no-cache")
}

// serveHubCDN answers /hf-cdn/SHA256/FILE with the bytes of the file that
// hashes to SHA256, as long as it still does.
func (s *server) serveHubCDN(w http.ResponseWriter, r *http.Request, rest string) {
	sum, _, _ := strings.Cut(rest, "/")
	s.hub.mu.Lock()
	key, ok := s.hub.cdn[sum]
	s.hub.mu.Unlock()
	if ok {
		if fi, err := s.hub.root.Stat(key); err != nil || !fi.Mode().IsRegular() {
			ok = false
		} else {
			dir, name := path.Split(key)
			f, err := s.hub.hashed(strings.TrimSuffix(dir, "/"), name, fi)
			ok = err == nil && f.sha256 == sum
		}
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", `"`+sum+`"`)
	w.Header().Set("Access-Control-Expose-Headers", hfExposed)
	s.serveFile(w, r, s.hub.root, key, "public, max-age=31536000, immutable")
}
