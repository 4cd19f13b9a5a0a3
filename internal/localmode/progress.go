package localmode

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/store"
)

// Progress prints a line per visible change of a target: plain lines with
// the time (`12:00:01 shop/web/staging  CONVERGED  fetch exit 0`), or on a
// terminal a compact line with a mark and the count of converged targets.
// It implements reconcile.Reporter.
type Progress struct {
	w        io.Writer
	terminal bool
	now      func() time.Time

	mu    sync.Mutex
	last  map[desired.Key]shown
	width int
}

type shown struct {
	status store.Status
	detail string
	info   string
}

// NewProgress returns a Progress writing to w; terminal selects the compact
// form.
func NewProgress(w io.Writer, terminal bool) *Progress {
	return &Progress{w: w, terminal: terminal, now: time.Now, last: map[desired.Key]shown{}}
}

// Seed records the states already known (from the store), so that only
// what changes afterwards is printed.
func (p *Progress) Seed(states []store.TargetState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, st := range states {
		p.last[st.Key()] = shownOf(st)
		p.width = max(p.width, len(st.Key().String()))
	}
}

// TargetChanged implements reconcile.Reporter.
func (p *Progress) TargetChanged(_ context.Context, st store.TargetState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := st.Key()
	s := shownOf(st)
	prev, seen := p.last[key]
	p.last[key] = s
	p.width = max(p.width, len(key.String()))
	switch {
	case st.Status == store.StatusPending || st.Status == store.StatusFetching:
		// Transient: the next line says what fetch found.
	case seen && prev.status == s.status && prev.detail == s.detail && prev.info != s.info:
		p.print(key, st.Status, "getInfo: "+s.info)
	case !seen || prev.status != s.status || prev.detail != s.detail:
		p.print(key, st.Status, s.detail)
	}
}

// Expect widens the key column for targets about to be reported.
func (p *Progress) Expect(keys []desired.Key) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		p.width = max(p.width, len(k.String()))
	}
}

// Note prints a line that is not about one target (a commit ingested,
// config errors).
func (p *Progress) Note(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := escapeControls(fmt.Sprintf(format, args...), true)
	if p.terminal {
		fmt.Fprintf(p.w, "» %s\n", msg)
		return
	}
	fmt.Fprintf(p.w, "%s %s\n", p.now().Format("15:04:05"), msg)
}

func (p *Progress) print(key desired.Key, status store.Status, detail string) {
	detail = escapeControls(detail, false)
	if p.terminal {
		converged, total := 0, 0
		for _, s := range p.last {
			if s.status == store.StatusDeleted {
				continue
			}
			total++
			if s.status.IsConverged() {
				converged++
			}
		}
		fmt.Fprintf(p.w, "%s [%d/%d converged] %-*s  %s", mark(status), converged, total, p.width, key, statusWords(status))
		if detail != "" {
			fmt.Fprintf(p.w, ": %s", detail)
		}
		fmt.Fprintln(p.w)
		return
	}
	fmt.Fprintf(p.w, "%s %-*s  %-23s  %s\n", p.now().Format("15:04:05"), p.width, key, status, detail)
}

func shownOf(st store.TargetState) shown {
	return shown{status: st.Status, detail: detail(st), info: infoText(st.Info)}
}

// detail explains a status: the engine's message, else what the last job
// said.
func detail(st store.TargetState) string {
	if st.Message != "" {
		return oneLine(st.Message)
	}
	switch {
	case st.Status == store.StatusConverged && st.LastFetch.RunID != "" && !st.LastFetch.Finished.Before(st.LastApply.Finished):
		return fmt.Sprintf("fetch exit %d", st.LastFetch.ExitCode)
	case st.Status == store.StatusConverged && st.LastApply.RunID != "":
		return fmt.Sprintf("apply exit %d", st.LastApply.ExitCode)
	case st.Status == store.StatusApplying:
		return "apply started"
	case st.Status == store.StatusPending:
		return "new desired state at commit " + short(st.Target.Commit)
	}
	return ""
}

func mark(s store.Status) string {
	switch {
	case s.IsConverged():
		return "✓"
	case s.IsFailed():
		return "✗"
	case s.IsWaiting():
		return "…"
	case s == store.StatusDeleted:
		return "-"
	}
	return "→"
}
