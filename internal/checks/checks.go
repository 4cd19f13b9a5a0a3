// Package checks reports pvnbot's work on GitHub as check runs: one per
// application and release channel on the commit that brought the channel's
// desired state (SPEC §5), and one for a commit's config problems. The
// Reporter is the engine's reconcile.Reporter: it takes each change at once
// and writes to GitHub on its own goroutine, coalescing what piles up, with
// at most one write in flight.
package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/google/go-github/v89/github"

	"github.com/pvnbot/pvnbot/internal/clock"
	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/store"
)

// API is what the Reporter uses of GitHub's Checks API;
// *github.ChecksService is one.
type API interface {
	CreateCheckRun(ctx context.Context, owner, repo string, opts github.CreateCheckRunOptions) (*github.CheckRun, *github.Response, error)
	UpdateCheckRun(ctx context.Context, owner, repo string, id int64, opts github.UpdateCheckRunOptions) (*github.CheckRun, *github.Response, error)
	ListCheckRunsForRef(ctx context.Context, owner, repo, ref string, opts *github.ListCheckRunsOptions) (*github.ListCheckRunsResults, *github.Response, error)
}

// Records gives what the store keeps beside the targets' states: a job
// run's record, for the output of what failed, and the approvals of a
// desired state; store.Store is one.
type Records interface {
	Run(ctx context.Context, id string) (store.JobRun, error)
	Approvals(ctx context.Context, key desired.Key, digest string) ([]store.Approval, error)
}

// Options wire a Reporter.
type Options struct {
	Owner, Repo string
	API         API
	Records     Records // optional
	// AppID is the App's ID, to find its own check runs after a restart.
	AppID int64
	// ProgressInterval is how long a check run's output waits to be
	// written again while only its progress changes (its status and
	// conclusion stay); default 10s. A new status or conclusion is written
	// at once.
	ProgressInterval time.Duration
	Clock            clock.Clock // default: the wall clock
	Logger           *slog.Logger
}

// CheckNamePrefix starts the name of every check run of pvnbot's.
const CheckNamePrefix = "pvnbot: "

// ChannelCheckName is the name of a release channel's check run.
func ChannelCheckName(app, channel string) string { return CheckNamePrefix + app + "/" + channel }

// ConfigsCheckName is the name of the check run of a commit's config
// problems.
const ConfigsCheckName = "pvnbot: configs"

// Reporter writes one repository's check runs.
type Reporter struct {
	opts  Options
	clock clock.Clock
	log   *slog.Logger

	mu       sync.Mutex
	channels map[channelKey]*channel
	queue    []task // work not written yet, oldest first; one entry per channel
	waiting  map[task]bool
	busy     bool               // a write is in flight
	notAfter time.Time          // GitHub asked to wait until then (rate limits)
	later    map[task]time.Time // progress to write then
	flushing int                // Flush waits: the progress waiting is written now
	stopped  bool               // Run has returned
	forced   map[task]bool      // progress Flush wants written now
	retries  int                // consecutive failed writes
	wake     chan struct{}
	idle     *sync.Cond
	tails    map[string]string          // output tails read so far, by run ID
	commits  map[commitKey]*commitCheck // configs and validate checks
}

var _ reconcile.Reporter = (*Reporter)(nil)

type channelKey struct{ app, channel string }

// task is a check run to bring up to date: a channel's, or a check of a
// commit.
type task struct {
	channel channelKey
	commit  commitKey
}

// commitKey names a check of a commit (pvnbot: configs, pvnbot: validate).
type commitKey struct{ name, sha string }

type channel struct {
	key     channelKey
	targets map[string]store.TargetState // by service
	// current is the check run of the channel's commit; superseded are
	// those of earlier commits still to be completed.
	current    *checkRun
	superseded []*checkRun
}

type checkRun struct {
	commit  string
	id      int64     // 0: not found or created yet
	looked  bool      // GitHub was asked for an existing one
	shown   output    // what GitHub shows
	written time.Time // last written
}

// commitCheck is a check of a commit, written once: its output and the
// annotations at files and lines.
type commitCheck struct {
	name        string
	o           output
	annotations []*github.CheckRunAnnotation
	run         checkRun
	annotated   int // annotations written
}

// New returns a Reporter; call Run to have it write.
func New(opts Options) *Reporter {
	r := &Reporter{
		opts: opts, clock: opts.Clock, log: opts.Logger,
		channels: map[channelKey]*channel{}, waiting: map[task]bool{},
		wake: make(chan struct{}, 1), tails: map[string]string{}, commits: map[commitKey]*commitCheck{},
		later: map[task]time.Time{}, forced: map[task]bool{},
	}
	r.idle = sync.NewCond(&r.mu)
	if r.opts.ProgressInterval <= 0 {
		r.opts.ProgressInterval = 10 * time.Second
	}
	if r.clock == nil {
		r.clock = clock.Real{}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("repo", opts.Owner+"/"+opts.Repo)
	return r
}

// Seed takes the states of a repository's targets as a starting engine has
// them: each channel's check run is then found on GitHub and brought up to
// date, so that what a restart interrupted is finished.
func (r *Reporter) Seed(states []store.TargetState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range states {
		r.update(st)
	}
}

// TargetChanged implements reconcile.Reporter. It returns at once.
func (r *Reporter) TargetChanged(_ context.Context, st store.TargetState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.update(st)
}

// update takes a target's new state. Called with r.mu held.
func (r *Reporter) update(st store.TargetState) {
	k := st.Key()
	key := channelKey{k.Application, k.ReleaseChannel}
	ch := r.channels[key]
	if ch == nil {
		ch = &channel{key: key, targets: map[string]store.TargetState{}}
		r.channels[key] = ch
	}
	if st.Status == store.StatusDeleted {
		delete(ch.targets, k.Service)
	} else {
		ch.targets[k.Service] = st
	}
	if commit := ch.commit(); commit != "" && (ch.current == nil || ch.current.commit != commit) {
		if ch.current != nil {
			ch.superseded = append(ch.superseded, ch.current)
		}
		ch.current = &checkRun{commit: commit}
	}
	r.enqueue(task{channel: key})
}

// commit is the commit that brought the channel's desired state: the
// newest among its targets'.
func (ch *channel) commit() string {
	var seq int64
	commit := ""
	if ch.current != nil {
		commit = ch.current.commit
	}
	for _, st := range ch.targets {
		if st.DesiredSeq > seq {
			seq, commit = st.DesiredSeq, st.Target.Commit
		}
	}
	return commit
}

// Rerun makes the next write of a channel's check run a new run (GitHub's
// Re-run asks for one), even when nothing shown changed.
func (r *Reporter) Rerun(app, channel string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := channelKey{app, channel}
	ch := r.channels[key]
	if ch == nil || ch.current == nil {
		return
	}
	ch.current = &checkRun{commit: ch.current.commit, looked: true}
	r.enqueue(task{channel: key})
}

// ReportProblems shows a commit's config problems and warnings as the
// check run pvnbot: configs, with an annotation at each one's file and
// line: failure when there is a problem, success with warnings otherwise.
// Nothing is written for a commit with neither.
func (r *Reporter) ReportProblems(commit string, problems, warnings config.Errors) {
	if len(problems) == 0 && len(warnings) == 0 {
		return
	}
	all := append(append(config.Errors{}, problems...), warnings...)
	r.check(ConfigsCheckName, commit, configsOutput(problems, warnings), annotations(all))
}

// enqueue adds t to the work, once. Called with r.mu held.
func (r *Reporter) enqueue(t task) {
	if !r.waiting[t] {
		r.waiting[t] = true
		r.queue = append(r.queue, t)
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run writes check runs until ctx is done.
func (r *Reporter) Run(ctx context.Context) {
	for {
		r.mu.Lock()
		now := r.clock.Now()
		var next time.Time
		for t, at := range r.later {
			if !at.After(now) || r.flushing > 0 {
				delete(r.later, t)
				r.forced[t] = r.flushing > 0
				r.enqueue(t)
			} else if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		wait := r.notAfter.Sub(now)
		var t task
		ready := len(r.queue) > 0 && wait <= 0
		if ready {
			t, r.queue = r.queue[0], r.queue[1:]
			delete(r.waiting, t)
			r.busy = true
		} else if len(r.queue) == 0 {
			r.idle.Broadcast()
			if !next.IsZero() {
				wait = next.Sub(now)
			}
		}
		r.mu.Unlock()
		if !ready {
			var timer clock.Timer
			if wait > 0 {
				timer = r.clock.AfterFunc(wait, func() {
					select {
					case r.wake <- struct{}{}:
					default:
					}
				})
			}
			select {
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				r.mu.Lock()
				r.stopped = true
				r.idle.Broadcast()
				r.mu.Unlock()
				return
			case <-r.wake:
			}
			if timer != nil {
				timer.Stop()
			}
			continue
		}
		err := r.do(ctx, t)
		r.mu.Lock()
		r.busy = false
		if err != nil {
			r.failed(t, err)
		} else {
			r.retries = 0
		}
		r.mu.Unlock()
	}
}

// failed puts t back, to be written after a pause: GitHub's when it asked
// for one, else one that grows with each failure. Called with r.mu held.
func (r *Reporter) failed(t task, err error) {
	now := r.clock.Now()
	var rate *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	switch {
	case errors.As(err, &rate):
		r.notAfter = rate.Rate.Reset.Time
		r.log.Warn("GitHub rate limit: check runs wait", "until", r.notAfter.UTC().Format(time.RFC3339))
	case errors.As(err, &abuse):
		wait := time.Minute
		if abuse.RetryAfter != nil {
			wait = *abuse.RetryAfter
		}
		r.notAfter = now.Add(wait)
		r.log.Warn("GitHub secondary rate limit: check runs wait", "for", wait.String())
	default:
		r.retries++
		wait := min(time.Second<<min(r.retries-1, 8), 5*time.Minute)
		r.notAfter = now.Add(wait)
		r.log.Error("write check run", "err", err, "retry_in", wait.String())
	}
	// In front: the latest state of t is written first once allowed.
	if !r.waiting[t] {
		r.waiting[t] = true
		r.queue = append([]task{t}, r.queue...)
	}
}

// Flush waits until every change reported so far is written (or ctx is
// done, or Run has returned: then what is left unwritten is an error).
func (r *Reporter) Flush(ctx context.Context) error {
	done := make(chan bool, 1) // whether all was written
	r.mu.Lock()
	r.flushing++
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	go func() {
		r.mu.Lock()
		pending := func() bool { return len(r.queue) > 0 || r.busy || len(r.later) > 0 }
		for pending() && ctx.Err() == nil && !r.stopped {
			r.idle.Wait()
		}
		r.flushing--
		done <- !pending()
		r.mu.Unlock()
	}()
	select {
	case written := <-done:
		if !written {
			return fmt.Errorf("check runs of %s/%s not all written: the reporter stopped", r.opts.Owner, r.opts.Repo)
		}
		return nil
	case <-ctx.Done():
		r.mu.Lock()
		r.idle.Broadcast()
		r.mu.Unlock()
		<-done
		return fmt.Errorf("check runs of %s/%s not all written: %w", r.opts.Owner, r.opts.Repo, ctx.Err())
	}
}

// do writes what t needs written.
func (r *Reporter) do(ctx context.Context, t task) error {
	r.mu.Lock()
	if t.commit.sha != "" {
		c := r.commits[t.commit]
		r.mu.Unlock()
		return r.writeCommitCheck(ctx, c)
	}
	ch := r.channels[t.channel]
	old := ch.superseded
	r.mu.Unlock()
	for len(old) > 0 {
		if err := r.supersede(ctx, ch.key, old[0], r.currentCommit(ch)); err != nil {
			return err
		}
		r.mu.Lock()
		ch.superseded = ch.superseded[1:]
		old = ch.superseded
		r.mu.Unlock()
	}
	return r.writeChannel(ctx, ch)
}

func (r *Reporter) currentCommit(ch *channel) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch.current == nil {
		return ""
	}
	return ch.current.commit
}

// writeChannel brings the channel's current check run to what its targets
// show: nothing when GitHub shows that already, an update while the run is
// not completed, a new run otherwise (a completed run is final on GitHub).
func (r *Reporter) writeChannel(ctx context.Context, ch *channel) error {
	r.mu.Lock()
	run := ch.current
	if run == nil {
		r.mu.Unlock()
		return nil
	}
	cs := channelState{app: ch.key.app, channel: ch.key.channel, commit: run.commit}
	for _, st := range ch.targets {
		cs.targets = append(cs.targets, st)
	}
	r.mu.Unlock()
	sort.Slice(cs.targets, func(i, j int) bool { return cs.targets[i].Key().Service < cs.targets[j].Key().Service })
	cs.tails = r.failedTails(ctx, cs.targets)
	cs.approvals = r.approvals(ctx, cs.targets)
	name := ChannelCheckName(ch.key.app, ch.key.channel)
	o := render(cs)
	t := task{channel: ch.key}
	r.mu.Lock()
	forced := r.forced[t]
	delete(r.forced, t)
	if at := run.written.Add(r.opts.ProgressInterval); !forced && run.id != 0 && progressOnly(run.shown, o) && r.clock.Now().Before(at) {
		r.later[t] = at
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	return r.write(ctx, run, name, o)
}

// progressOnly reports whether o differs from what is shown in its output
// alone (a count, a target's line: progress), not in status, conclusion or
// approvals. A new status, conclusion or approval is written at once.
func progressOnly(shown, o output) bool {
	return o != shown && o.status == shown.status && o.conclusion == shown.conclusion && o.approvals == shown.approvals
}

// supersede completes the check run of an earlier commit, unless it is
// completed already.
func (r *Reporter) supersede(ctx context.Context, key channelKey, run *checkRun, by string) error {
	name := ChannelCheckName(key.app, key.channel)
	if !run.looked && run.id == 0 {
		if err := r.find(ctx, run, name); err != nil {
			return err
		}
	}
	if run.id == 0 || run.shown.completed() {
		return nil
	}
	o := output{status: statusCompleted, conclusion: "neutral", title: "superseded by commit " + short(by)}
	o.summary = fmt.Sprintf("**%s/%s**: the desired state of commit `%s` replaced this one's before it was done.\n", key.app, key.channel, short(by))
	return r.write(ctx, run, name, o)
}

// approvals reads the approvals of the targets' desired states, by
// service.
func (r *Reporter) approvals(ctx context.Context, targets []store.TargetState) map[string][]store.Approval {
	out := map[string][]store.Approval{}
	if r.opts.Records == nil {
		return out
	}
	for _, st := range targets {
		if !st.Target.NeedsApproval() {
			continue
		}
		all, err := r.opts.Records.Approvals(ctx, st.Key(), st.Target.Digest)
		if err != nil {
			r.log.Warn("read approvals", "target", st.Key().String(), "err", err)
			continue
		}
		for _, a := range all {
			if a.Commit == st.Target.Commit {
				out[st.Key().Service] = append(out[st.Key().Service], a)
			}
		}
	}
	return out
}

// failedTails reads the output of the failed targets' last jobs.
func (r *Reporter) failedTails(ctx context.Context, targets []store.TargetState) map[string]string {
	out := map[string]string{}
	if r.opts.Records == nil {
		return out
	}
	for _, st := range targets {
		if !failing(st) {
			continue
		}
		for _, o := range []store.Outcome{st.LastApply, st.LastFetch} {
			if o.RunID == "" {
				continue
			}
			r.mu.Lock()
			t, ok := r.tails[o.RunID]
			r.mu.Unlock()
			if !ok {
				run, err := r.opts.Records.Run(ctx, o.RunID)
				if err != nil {
					continue
				}
				t = run.OutputTail
				r.mu.Lock()
				r.tails[o.RunID] = t
				r.mu.Unlock()
			}
			out[o.RunID] = t
		}
	}
	return out
}

// find looks for the App's latest check run of that name on the run's
// commit, as one written before a restart.
func (r *Reporter) find(ctx context.Context, run *checkRun, name string) error {
	opts := &github.ListCheckRunsOptions{CheckName: github.Ptr(name), Filter: github.Ptr("latest")}
	if r.opts.AppID != 0 {
		opts.AppID = github.Ptr(r.opts.AppID)
	}
	res, _, err := r.opts.API.ListCheckRunsForRef(ctx, r.opts.Owner, r.opts.Repo, run.commit, opts)
	if err != nil {
		return fmt.Errorf("list check runs %q of %s: %w", name, short(run.commit), err)
	}
	run.looked = true
	for _, cr := range res.CheckRuns {
		if cr.GetName() != name || (cr.GetHeadSHA() != "" && cr.GetHeadSHA() != run.commit) {
			continue
		}
		run.id = cr.GetID()
		run.shown = output{
			status: cr.GetStatus(), conclusion: cr.GetConclusion(),
			title: cr.GetOutput().GetTitle(), summary: cr.GetOutput().GetSummary(),
		}
		// The API does not give a run's actions back; ours has the
		// Approve button exactly when it waits for approval.
		run.shown.approve = run.shown.conclusion == "action_required"
		break
	}
	return nil
}

// write makes GitHub show o on run: nothing if it does already, an update
// of a run that is not completed, or a new run.
func (r *Reporter) write(ctx context.Context, run *checkRun, name string, o output) error {
	if !run.looked && run.id == 0 {
		if err := r.find(ctx, run, name); err != nil {
			return err
		}
	}
	if run.id != 0 && run.shown == o {
		return nil
	}
	return r.put(ctx, run, name, o, nil)
}

// put writes o, with annotations (at most 50), on run: as an update while
// it is not completed, or when only its output changes; as a new run when a
// completed run would change status or conclusion, which GitHub keeps
// final.
func (r *Reporter) put(ctx context.Context, run *checkRun, name string, o output, annotations []*github.CheckRunAnnotation) error {
	out := &github.CheckRunOutput{Title: github.Ptr(o.title), Summary: github.Ptr(o.summary), Annotations: annotations}
	var actions []*github.CheckRunAction
	if o.approve {
		actions = []*github.CheckRunAction{{
			Label: "Approve", Identifier: approveActionID,
			Description: clip("Approve "+name[len("pvnbot: "):], maxActionDesc),
		}}
	}
	var status, conclusion *string
	if o.status != "" {
		status = github.Ptr(o.status)
	}
	if o.conclusion != "" {
		conclusion = github.Ptr(o.conclusion)
	}
	now := github.Timestamp{Time: r.clock.Now()}
	var completedAt *github.Timestamp
	if o.completed() {
		completedAt = &now
	}
	sameEnd := run.shown.completed() && o.completed() && run.shown.conclusion == o.conclusion
	if sameEnd {
		status, conclusion, completedAt = nil, nil, nil // final already
	}
	var cr *github.CheckRun
	var err error
	if run.id != 0 && (!run.shown.completed() || sameEnd) {
		cr, _, err = r.opts.API.UpdateCheckRun(ctx, r.opts.Owner, r.opts.Repo, run.id, github.UpdateCheckRunOptions{
			Name: name, Status: status, Conclusion: conclusion, CompletedAt: completedAt, Output: out, Actions: actions,
		})
	} else {
		cr, _, err = r.opts.API.CreateCheckRun(ctx, r.opts.Owner, r.opts.Repo, github.CreateCheckRunOptions{
			Name: name, HeadSHA: run.commit, ExternalID: github.Ptr(name[len("pvnbot: "):]),
			Status: status, Conclusion: conclusion, StartedAt: &now, CompletedAt: completedAt, Output: out, Actions: actions,
		})
	}
	if err != nil {
		return fmt.Errorf("write check run %q of %s: %w", name, short(run.commit), err)
	}
	run.id, run.looked, run.shown, run.written = cr.GetID(), true, o, r.clock.Now()
	return nil
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
