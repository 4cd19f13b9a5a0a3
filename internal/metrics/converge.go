package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/store"
)

// Convergence returns the Reporter observing, for one repository, the
// seconds from a commit's desired state taken (its targets pending) to
// every target of a release channel converged on it. Seed it with the
// targets the engine starts with.
func (m *Metrics) Convergence(repo string, now func() time.Time) *Convergence {
	return &Convergence{m: m, repo: repo, now: now, channels: map[[2]string]*channelTimes{}}
}

// Convergence is a reconcile.Reporter; see Metrics.Convergence.
type Convergence struct {
	m    *Metrics
	repo string
	now  func() time.Time

	mu       sync.Mutex
	channels map[[2]string]*channelTimes
}

type channelTimes struct {
	targets map[string]store.TargetState // live, by service
	since   map[string]time.Time         // commit → when its desired state was taken
}

var _ reconcile.Reporter = (*Convergence)(nil)

// Seed makes the targets an engine starts with known, unchanged: a
// channel counts as converged only once these are too.
func (c *Convergence) Seed(states []store.TargetState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range states {
		c.track(st)
	}
}

// TargetChanged implements reconcile.Reporter.
func (c *Convergence) TargetChanged(_ context.Context, st store.TargetState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.track(st)
	commit := st.Target.Commit
	if st.Status == store.StatusPending {
		if _, ok := ch.since[commit]; !ok {
			ch.since[commit] = c.now()
		}
		return
	}
	started, ok := ch.since[commit]
	if !ok {
		return
	}
	for _, t := range ch.targets {
		if !t.Status.IsConverged() {
			return
		}
	}
	c.m.converged.WithLabelValues(c.repo).Observe(c.now().Sub(started).Seconds())
	clear(ch.since) // earlier commits' will not converge any more
}

// track keeps st as its channel's live target.
func (c *Convergence) track(st store.TargetState) *channelTimes {
	k := st.Key()
	key := [2]string{k.Application, k.ReleaseChannel}
	ch := c.channels[key]
	if ch == nil {
		ch = &channelTimes{targets: map[string]store.TargetState{}, since: map[string]time.Time{}}
		c.channels[key] = ch
	}
	if st.Status == store.StatusDeleted {
		delete(ch.targets, k.Service)
	} else {
		ch.targets[k.Service] = st
	}
	return ch
}
