package hfrepo

import (
	"fmt"
	"net/url"
	"strings"
)

// Scheme starts a model location that names a Hugging Face repository.
const Scheme = "hf:"

// DefaultEndpoint is the public hub.
const DefaultEndpoint = "https://huggingface.co"

// Location is a parsed `hf:ORG/REPO[@REVISION]`.
type Location struct {
	Repo     string // "ORG/REPO"
	Revision string // a branch, tag or commit; "main" when not given
}

// IsLocation reports whether s is meant as an hf: location (it may still
// fail to parse).
func IsLocation(s string) bool { return strings.HasPrefix(s, Scheme) }

// ParseLocation parses `hf:ORG/REPO[@REVISION]`. ORG and REPO are the
// hub's names (letters, digits, '-', '_', '.', at most 96 each, not
// starting with '.' or '-'); REVISION is a branch, tag or commit hash and
// may contain '/' (refs/pr/1).
func ParseLocation(s string) (Location, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return Location{}, fmt.Errorf("model location %q does not start with %s", s, Scheme)
	}
	repo, rev, hasRev := strings.Cut(rest, "@")
	if !hasRev {
		rev = "main"
	}
	org, name, ok := strings.Cut(repo, "/")
	if !ok || !validName(org) || !validName(name) {
		return Location{}, fmt.Errorf("model location %q: want %sORG/REPO[@REVISION] with names of letters, digits, '-', '_' and '.'", s, Scheme)
	}
	if !validRevision(rev) {
		return Location{}, fmt.Errorf("model location %q: revision %q is not a branch, tag or commit name", s, rev)
	}
	return Location{Repo: org + "/" + name, Revision: rev}, nil
}

func (l Location) String() string {
	if l.Revision == "main" {
		return Scheme + l.Repo
	}
	return Scheme + l.Repo + "@" + l.Revision
}

func validName(s string) bool {
	if s == "" || len(s) > 96 || s[0] == '.' || s[0] == '-' || strings.Contains(s, "..") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func validRevision(s string) bool {
	if s == "" || len(s) > 255 || strings.Contains(s, "..") || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || strings.ContainsRune(`~^:?*[\@#%&`, c) {
			return false
		}
	}
	return true
}

// resolveBase is ENDPOINT/ORG/REPO/resolve/REVISION/ with the revision
// escaped as one path segment, as huggingface_hub's hf_hub_url does
// (quote(revision, safe="")).
func resolveBase(endpoint, repo, rev string) string {
	return strings.TrimSuffix(endpoint, "/") + "/" + repo + "/resolve/" + url.PathEscape(rev) + "/"
}
