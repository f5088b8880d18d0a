package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line progress bar for long work on stderr.
type progress struct {
	w      io.Writer
	label  string
	total  int
	n      int
	last   time.Time
	drawn  bool
	width  int
	minGap time.Duration
}

func newProgress(w io.Writer, label string, total int) *progress {
	p := &progress{w: w, label: label, total: total, width: 30, minGap: 100 * time.Millisecond}
	p.draw()
	return p
}

func (p *progress) add(n int) {
	p.n += n
	if time.Since(p.last) >= p.minGap || p.n == p.total {
		p.draw()
	}
}

func (p *progress) draw() {
	p.last = time.Now()
	filled := p.width
	if p.total > 0 {
		filled = p.n * p.width / p.total
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d", p.label, strings.Repeat("#", filled), strings.Repeat("-", p.width-filled), p.n, p.total)
	p.drawn = true
}

// done ends the bar's line.
func (p *progress) done() {
	if p.drawn {
		p.draw()
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
