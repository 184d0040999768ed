package progress

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Reporter receives (done, total) byte counts.
type Reporter struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	desc  string
	start time.Time
	last  time.Time
	done  int64
	total int64
}

// New reports to w; when w is a terminal it draws a bar.
func New(w io.Writer, desc string) *Reporter {
	r := &Reporter{w: w, desc: desc, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		r.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return r
}

// Update records progress.
func (r *Reporter) Update(done, total int64) {
	r.done, r.total = done, total
	if r.bar != nil {
		if r.bar.GetMax64() != total {
			r.bar.ChangeMax64(total)
		}
		r.bar.Set64(done)
		return
	}
	if time.Since(r.last) < 2*time.Second && done < total {
		return
	}
	r.last = time.Now()
	fmt.Fprintf(r.w, "%s: %s of %s (%.0f%%)%s\n", r.desc, Bytes(done), Bytes(total), 100*float64(done)/float64(max(total, 1)), r.eta())
}

func (r *Reporter) eta() string {
	el := time.Since(r.start)
	if r.done == 0 || r.done >= r.total {
		return fmt.Sprintf(", %v elapsed", el.Round(time.Second))
	}
	left := time.Duration(float64(el) * float64(r.total-r.done) / float64(r.done))
	return fmt.Sprintf(", ETA %v", left.Round(time.Second))
}

// Finish ends the bar.
func (r *Reporter) Finish() {
	if r.bar != nil {
		r.bar.Finish()
	}
}

// Bytes formats a byte count with a binary unit.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
