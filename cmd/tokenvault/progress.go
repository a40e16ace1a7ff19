package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progressEvery is the shortest time between two redraws of a progress line.
const progressEvery = 100 * time.Millisecond

// progress is a live status line on stderr ("backup: 12,345,678 bytes…"), rewritten in place
// with \r, for long commands. It draws only when stderr is a terminal: piped or redirected,
// it writes nothing, so logs and scripts see only the command's final line. Safe for
// concurrent use.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool          // draw at all (stderr is a terminal)
	every time.Duration // throttle: at most one redraw per every (0: every update)
	last  time.Time     // the last redraw
	width int           // the length of the line on screen, blanked by clear
}

// isTerminal reports whether w is a terminal (a file whose descriptor is a tty).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress draws on w if w is a terminal.
func newProgress(w io.Writer) *progress {
	return &progress{w: w, on: isTerminal(w), every: progressEvery}
}

// update redraws the line with the formatted text and "…", at most once per p.every (counts
// that change often).
func (p *progress) update(format string, args ...any) { p.draw(false, format, args...) }

// show redraws the line at once (a new phase, which must not be skipped).
func (p *progress) show(format string, args ...any) { p.draw(true, format, args...) }

func (p *progress) draw(force bool, format string, args ...any) {
	if p == nil || !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !force && p.every > 0 && now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	line := fmt.Sprintf(format, args...) + "…"
	pad := max(p.width-len(line), 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.width = len(line)
}

// clear blanks the line, before the command prints its final one.
func (p *progress) clear() {
	if p == nil || !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
		p.width = 0
	}
}

// thousands writes n with comma separators: 12345678 → "12,345,678".
func thousands[N int | int64 | uint64](n N) string {
	s := strconv.FormatUint(uint64(max(n, 0)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
