package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// fault is one injected failure for pack files whose path contains Path.
type fault struct {
	Path     string `json:"path"`
	CutAfter int64  `json:"cut_after,omitempty"` // drop the connection after this many body bytes
	Status   int    `json:"status,omitempty"`    // answer with this status instead
	Corrupt  bool   `json:"corrupt,omitempty"`   // flip a bit of the body
	Times    int    `json:"times,omitempty"`     // how many requests it hits; 0 means every one
	DownMS   int    `json:"down_ms,omitempty"`   // drop every connection for this long
	// Range limits the fault to requests with this exact Range header
	// (one weight range of a file whose header reads must go through).
	Range string `json:"range,omitempty"`
	// ETag replaces the answer's ETag: a CDN edge or proxy serving another
	// version of the file than the one the client indexed.
	ETag string `json:"etag,omitempty"`
}

type faultSet struct {
	mu        sync.Mutex
	list      []*fault
	downUntil time.Time
}

// handle is POST /__faults (add one), DELETE /__faults (clear all).
func (s *faultSet) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodDelete:
		s.list, s.downUntil = nil, time.Time{}
	case http.MethodPost:
		var f fault
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			http.Error(w, "bad fault: "+err.Error(), http.StatusBadRequest)
			return
		}
		if f.DownMS > 0 {
			s.downUntil = time.Now().Add(time.Duration(f.DownMS) * time.Millisecond)
		} else {
			s.list = append(s.list, &f)
		}
	default:
		http.Error(w, "POST or DELETE", http.StatusMethodNotAllowed)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *faultSet) down() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Now().Before(s.downUntil)
}

// match returns the first fault for name and the request's Range header,
// and uses up one of its times.
func (s *faultSet) match(name, rg string) *fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.list {
		if !strings.Contains(name, f.Path) || f.Range != "" && f.Range != rg {
			continue
		}
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.list = append(s.list[:i:i], s.list[i+1:]...)
			}
		}
		return f
	}
	return nil
}

// wrap applies a body fault to w.
func (f *fault) wrap(w http.ResponseWriter) http.ResponseWriter {
	return &faulty{ResponseWriter: w, f: f}
}

type faulty struct {
	http.ResponseWriter
	f       *fault
	written int64
	flipped bool
	headed  bool
}

func (w *faulty) WriteHeader(code int) {
	if !w.headed && w.f.ETag != "" {
		w.Header().Set("ETag", w.f.ETag)
	}
	w.headed = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *faulty) Write(b []byte) (int, error) {
	if !w.headed {
		w.WriteHeader(http.StatusOK)
	}
	if w.f.Corrupt && !w.flipped && len(b) > 0 {
		c := append([]byte(nil), b...)
		c[len(c)/2] ^= 0x01
		b, w.flipped = c, true
	}
	if w.f.CutAfter > 0 && w.written+int64(len(b)) > w.f.CutAfter {
		n, _ := w.ResponseWriter.Write(b[:w.f.CutAfter-w.written])
		w.written += int64(n)
		if fl, ok := w.ResponseWriter.(http.Flusher); ok {
			fl.Flush()
		}
		panic(http.ErrAbortHandler) // the connection is cut mid-body
	}
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}
