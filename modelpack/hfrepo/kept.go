package hfrepo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Keeper keeps built indexes across visits, by a key naming the endpoint,
// the repository and the commit (the browser worker keeps them in its
// storage, under its budget). What Get returns is not trusted: Index
// replays it through the same parsers and checks as bytes from the
// network, and drops and rebuilds an entry that fails them.
type Keeper interface {
	Get(ctx context.Context, key string) ([]byte, bool)
	Put(ctx context.Context, key string, b []byte)
	Drop(ctx context.Context, key string)
}

// keptKey names the index of repo at commit served by endpoint. The
// format's version is part of it: a new encoding misses old entries.
func keptKey(endpoint, repo, commit string) string {
	return keptMagic + "\x00" + strings.TrimSuffix(endpoint, "/") + "\x00" + repo + "\x00" + commit
}

// Index reads the repository's config, tokenizer and safetensors headers
// and builds its manifest without reading any weight (but the few a
// config cannot describe unless they are zero, which it checks).
//
// With o.Keep, what the index was built from is kept per commit, and a
// later Index of the same commit is built from it: with no request when
// the location names a commit, and with one when it names a branch or a
// tag, to learn which commit that is now (a new commit is indexed
// afresh). A kept index may carry ETags the CDN no longer sends for its
// files (a file moved under the same commit); Repo.HTTP then reads the
// headers again once (see keptIndex.etagChanged).
func Index(ctx context.Context, loc Location, o Options) (*Repo, error) {
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: endpoint %q is not an http(s) URL", loc, endpoint)
	}
	client := o.HTTP.Client
	if client == nil {
		client = http.DefaultClient
	}
	g := &getter{client: client, base: resolveBase(endpoint, loc.Repo, loc.Revision), tries: 3}
	if o.Keep == nil {
		return build(ctx, loc, endpoint, g, o.Quant)
	}
	k := &keptIndex{keep: o.Keep, loc: loc, endpoint: endpoint, client: client, quant: o.Quant, logf: o.HTTP.Logf}
	if k.logf == nil {
		k.logf = func(string, ...any) {}
	}
	commit := loc.Revision
	if !validCommit(commit) {
		// A branch or tag: one request says which commit it is at now.
		// The hub's resolve answer carries X-Repo-Commit, the commit the
		// revision resolved to (huggingface_hub file_download.py,
		// get_hf_file_metadata: HfFileMetadata.commit_hash is that header,
		// constants.HUGGINGFACE_HEADER_X_REPO_COMMIT; cmd/devserver/hf.go
		// lists the rest). config.json is a file kept in git, answered
		// directly with no redirect: reading it whole costs what a HEAD
		// does for a few kilobytes, and a new commit needs its body anyway.
		cfg, err := g.get(ctx, "config.json", 0, -1, maxConfigBytes)
		if err != nil {
			return nil, configError(loc, err)
		}
		g.replay = map[request]*answer{{"config.json", 0, -1}: cfg}
		commit = cfg.commit
	}
	if validCommit(commit) {
		if b, ok := o.Keep.Get(ctx, k.key(commit)); ok {
			r, err := k.open(ctx, b, commit)
			if err == nil {
				return r, nil
			}
			k.logf("%s: the index kept from an earlier visit is not usable (%v); indexing the repository again", loc, err)
			o.Keep.Drop(ctx, k.key(commit))
		}
	}
	r, err := build(ctx, loc, endpoint, g, o.Quant)
	if err != nil {
		return nil, err
	}
	if r.Pinned {
		o.Keep.Put(ctx, k.key(r.Commit), encodeKept(g.log))
	}
	return r, nil
}

// keptIndex is how a Repo's index is kept, and rebuilt once when the
// CDN's ETags are no longer the kept ones.
type keptIndex struct {
	keep     Keeper
	loc      Location
	endpoint string
	client   *http.Client
	quant    Quant
	logf     func(format string, args ...any)

	mu        sync.Mutex // held while the index is read again
	repo      *Repo
	refreshed bool // the index was read again (once at most)
	fresh     bool // and its ETags replaced the kept ones
}

func (k *keptIndex) key(commit string) string { return keptKey(k.endpoint, k.loc.Repo, commit) }

// open builds the repository's index from a kept entry for commit, with
// no request.
func (k *keptIndex) open(ctx context.Context, b []byte, commit string) (*Repo, error) {
	log, err := decodeKept(b)
	if err != nil {
		return nil, err
	}
	replay := make(map[request]*answer, len(log))
	for _, r := range log {
		replay[r.request] = r.a
	}
	g := &getter{base: resolveBase(k.endpoint, k.loc.Repo, k.loc.Revision), replay: replay, offline: true}
	r, err := build(ctx, k.loc, k.endpoint, g, k.quant)
	if err != nil {
		return nil, err
	}
	if r.Commit != commit || !r.Pinned {
		return nil, fmt.Errorf("it is of commit %q, not %s", r.Commit, commit)
	}
	r.FromKept, r.keep, k.repo = true, k, r
	return r, nil
}

// etagChanged suits shard.HTTPOptions.ETagChanged for a Repo built from a
// kept index: the first time an answer's ETag is not the kept one, the
// kept entry is dropped and the repository indexed again from the
// network at the same commit. When that gives the same manifest, its
// ETags replace the kept ones (and the new index is kept) and the read is
// tried again; when the answers still differ, the read fails as it would
// have without a kept index.
func (k *keptIndex) etagChanged(ctx context.Context, u, got string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.refreshed {
		return k.fresh // another read got here first
	}
	k.refreshed = true
	r := k.repo
	k.logf("%s: %s answered with ETag %s, not the one kept with the index; indexing the repository again", k.loc, u, got)
	k.keep.Drop(ctx, k.key(r.Commit))
	g := &getter{client: k.client, base: resolveBase(k.endpoint, k.loc.Repo, r.Commit), tries: 3}
	fresh, err := build(ctx, Location{Repo: k.loc.Repo, Revision: r.Commit}, k.endpoint, g, k.quant)
	if err != nil {
		k.logf("%s: indexing again: %v", k.loc, err)
		return false
	}
	a, err1 := json.Marshal(fresh.Manifest)
	b, err2 := json.Marshal(r.Manifest)
	if err := errors.Join(err1, err2); err != nil || !bytes.Equal(a, b) || fresh.Commit != r.Commit {
		k.logf("%s: indexed again, the repository's manifest is not the kept one's (%v): keeping the loaded one", k.loc, err)
		return false
	}
	k.keep.Put(ctx, k.key(r.Commit), encodeKept(g.log))
	r.mu.Lock()
	r.etags = fresh.etags
	r.mu.Unlock()
	k.fresh = true
	return true
}

// A kept index is the answers the index was built from: keptMagic, the
// length of a JSON list of keptAnswer (uint32, little-endian), the list,
// then each answer's body in its order. Keeping the answers rather than
// the manifest means a kept entry goes through exactly the parsers and
// checks network bytes do, and the fused layouts and ETags need no
// encoding of their own.
const keptMagic = "mode hf index 1\n"

// maxKeptAnswers bounds the list: a real repository's index reads a
// handful of files and two header ranges per safetensors file.
const maxKeptAnswers = 1 << 14

type keptAnswer struct {
	File       string `json:"file"`
	Off        int64  `json:"off"`
	N          int64  `json:"n"`
	Missing    bool   `json:"missing,omitempty"` // not found
	Size       int64  `json:"size"`              // of the body
	Total      int64  `json:"total"`
	Commit     string `json:"commit,omitempty"`
	LinkedSize int64  `json:"linkedSize"`
	ETag       string `json:"etag,omitempty"`
}

func encodeKept(log []recorded) []byte {
	list := make([]keptAnswer, len(log))
	n := 0
	for i, r := range log {
		list[i] = keptAnswer{File: r.file, Off: r.off, N: r.n, Missing: r.a == nil}
		if a := r.a; a != nil {
			list[i].Size, list[i].Total, list[i].Commit, list[i].LinkedSize, list[i].ETag = int64(len(a.body)), a.total, a.commit, a.linkedSize, a.etag
			n += len(a.body)
		}
	}
	meta, _ := json.Marshal(list) // strings and numbers only
	b := make([]byte, 0, len(keptMagic)+4+len(meta)+n)
	b = append(b, keptMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(meta)))
	b = append(b, meta...)
	for _, r := range log {
		if r.a != nil {
			b = append(b, r.a.body...)
		}
	}
	return b
}

// decodeKept splits a kept entry into the answers to replay, checking
// that its parts add up; the answers' contents are checked as they are
// replayed.
func decodeKept(b []byte) ([]recorded, error) {
	rest, ok := bytes.CutPrefix(b, []byte(keptMagic))
	if !ok || len(rest) < 4 {
		return nil, errors.New("not a kept index")
	}
	n := binary.LittleEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(n) > uint64(len(rest)) {
		return nil, fmt.Errorf("a %d-byte list in %d bytes", n, len(rest))
	}
	var list []keptAnswer
	if err := json.Unmarshal(rest[:n], &list); err != nil {
		return nil, fmt.Errorf("its list: %w", err)
	}
	if len(list) == 0 || len(list) > maxKeptAnswers {
		return nil, fmt.Errorf("%d answers", len(list))
	}
	rest = rest[n:]
	out := make([]recorded, 0, len(list))
	seen := make(map[request]bool, len(list))
	for _, e := range list {
		k := request{e.File, e.Off, e.N}
		if seen[k] {
			return nil, fmt.Errorf("%s bytes %d+%d twice", e.File, e.Off, e.N)
		}
		seen[k] = true
		if e.Missing {
			if e.Size != 0 {
				return nil, fmt.Errorf("%s: not found, with %d bytes", e.File, e.Size)
			}
			out = append(out, recorded{k, nil})
			continue
		}
		if e.Size < 0 || e.Size > int64(len(rest)) {
			return nil, fmt.Errorf("%s: %d bytes, %d left", e.File, e.Size, len(rest))
		}
		out = append(out, recorded{k, &answer{body: rest[:e.Size:e.Size], total: e.Total, commit: e.Commit, linkedSize: e.LinkedSize, etag: e.ETag}})
		rest = rest[e.Size:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d bytes past the answers", len(rest))
	}
	return out, nil
}
