package checks_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v89/github"
	"github.com/palantir/go-githubapp/githubapp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/checks"
	"github.com/pvnbot/pvnbot/internal/clock"
	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/githubtest"
	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/store"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// fixture is the fake GitHub with repository acme/deploys, two commits,
// and a Reporter writing its check runs.
type fixture struct {
	t      *testing.T
	gh     *githubtest.GitHub
	repo   *githubtest.Repo
	c1, c2 string
	clock  *clock.Fake
	runs   store.Store
	r      *checks.Reporter
	stop   func()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	gh := githubtest.New(t)
	git := gitrepotest.New(t)
	git.Write("a.pvn.yaml", "# one\n")
	c1 := git.Commit("one")
	git.Write("a.pvn.yaml", "# two\n")
	c2 := git.Commit("two")
	inst := gh.AddInstallation("acme")
	f := &fixture{t: t, gh: gh, repo: gh.AddRepo(inst, "acme/deploys", "main", git.Dir), c1: c1, c2: c2,
		clock: clock.NewFake(t0), runs: store.NewMemory().Repo("acme/deploys")}
	f.start()
	return f
}

// api is the Checks API of a new installation client, as go-githubapp makes.
func (f *fixture) api() checks.API {
	creator := githubapp.NewClientCreator(f.gh.APIURL(), f.gh.URL()+"/api/graphql", f.gh.AppID(), []byte(f.gh.PrivateKeyPEM()))
	client, err := creator.NewInstallationClient(f.repo.InstallationID)
	require.NoError(f.t, err)
	return client.Checks
}

// start runs a new Reporter, as a (re)started bot does.
func (f *fixture) start() { f.startWith(f.api()) }

func (f *fixture) startWith(api checks.API) {
	if f.stop != nil {
		f.stop()
	}
	f.r = checks.New(checks.Options{Owner: "acme", Repo: "deploys", API: api, Records: f.runs, AppID: f.gh.AppID(), Clock: f.clock})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.r.Run(ctx); close(done) }()
	f.stop = func() { cancel(); <-done }
	f.t.Cleanup(func() { f.stop() })
}

func (f *fixture) flush() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(f.t, f.r.Flush(ctx))
}

func state(service, channel, commit string, seq int64, status store.Status) store.TargetState {
	return store.TargetState{
		Target:     desired.Target{Key: desired.Key{Application: "shop", Service: service, ReleaseChannel: channel}, Commit: commit},
		DesiredSeq: seq, LatestSeq: seq, Status: status,
	}
}

func (f *fixture) report(states ...store.TargetState) {
	for _, st := range states {
		f.r.TargetChanged(context.Background(), st)
	}
	f.flush()
}

// runs are the check runs of a name, oldest first.
func (f *fixture) checkRuns(name string) []githubtest.CheckRun {
	var out []githubtest.CheckRun
	for _, cr := range f.gh.CheckRuns(f.repo) {
		if cr.Name == name {
			out = append(out, cr)
		}
	}
	return out
}

func (f *fixture) writes() int { return len(f.gh.CheckRunWrites(f.repo)) }

const staging = "pvnbot: shop/staging"

func TestChannelCheckRunFollowsItsTargets(t *testing.T) {
	f := newFixture(t)
	f.report(state("web", "staging", f.c1, 1, store.StatusApplying), state("api", "staging", f.c1, 1, store.StatusPending))
	runs := f.checkRuns(staging)
	require.Len(t, runs, 1)
	assert.Equal(t, "in_progress", runs[0].Status)
	assert.Equal(t, f.c1, runs[0].HeadSHA)
	assert.Equal(t, "shop/staging", runs[0].ExternalID)
	assert.Contains(t, runs[0].Summary, "| web | ⏳ APPLYING |")

	web := state("web", "staging", f.c1, 1, store.StatusConverged)
	web.LastApply = store.Outcome{RunID: "r1", Finished: t0, ExitCode: 0}
	web.LastFetch = store.Outcome{RunID: "f1", Finished: t0.Add(time.Second)}
	api := state("api", "staging", f.c1, 1, store.StatusConverged)
	f.report(web, api)
	runs = f.checkRuns(staging)
	require.Len(t, runs, 1, "the same run, updated")
	assert.Equal(t, "completed", runs[0].Status)
	assert.Equal(t, "success", runs[0].Conclusion)
	assert.Equal(t, "2 targets converged", runs[0].Title)
	assert.Contains(t, runs[0].Summary, "| web | ✅ CONVERGED | `"+f.c1[:7]+"` | exit 0 | exit 0 at 2026-05-01 12:00:00 UTC |")

	// A steady-state fetch that finds nothing new writes nothing.
	before := f.writes()
	web.LastFetch = store.Outcome{RunID: "f9", Finished: t0.Add(time.Hour)}
	f.report(web, web)
	assert.Equal(t, before, f.writes(), "nothing a reader sees changed")
}

// gatedAPI holds the first create until released.
type gatedAPI struct {
	checks.API
	entered, release chan struct{}
	once             sync.Once
}

func (g *gatedAPI) CreateCheckRun(ctx context.Context, owner, repo string, opts github.CreateCheckRunOptions) (*github.CheckRun, *github.Response, error) {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	return g.API.CreateCheckRun(ctx, owner, repo, opts)
}

// Several changes while a write is in flight make one more write, with the
// latest state.
func TestWritesAreCoalesced(t *testing.T) {
	f := newFixture(t)
	gate := &gatedAPI{API: f.api(), entered: make(chan struct{}), release: make(chan struct{})}
	f.startWith(gate)
	f.r.TargetChanged(context.Background(), state("web", "staging", f.c1, 1, store.StatusPending))
	<-gate.entered
	for _, s := range []store.Status{store.StatusFetching, store.StatusApplying, store.StatusConverging, store.StatusConverged} {
		f.r.TargetChanged(context.Background(), state("web", "staging", f.c1, 1, s))
		f.r.TargetChanged(context.Background(), state("api", "staging", f.c1, 1, s))
	}
	close(gate.release)
	f.flush()
	writes := f.gh.CheckRunWrites(f.repo)
	require.Len(t, writes, 2, "the first write, then one for the eight changes made meanwhile")
	assert.Equal(t, "in_progress", writes[0].Status)
	assert.Equal(t, "success", writes[1].Conclusion)
}

func TestApprovalNeedsAButtonThenANewRun(t *testing.T) {
	f := newFixture(t)
	prod := state("web", "production", f.c1, 1, store.StatusWaitingManualApproval)
	prod.Message = "waiting for approval: 0 of 1 approvers"
	f.report(prod)
	runs := f.checkRuns("pvnbot: shop/production")
	require.Len(t, runs, 1)
	assert.Equal(t, "completed", runs[0].Status, "GitHub shows buttons on completed runs only")
	assert.Equal(t, "action_required", runs[0].Conclusion)
	assert.Equal(t, []github.CheckRunAction{{Label: "Approve", Description: "Approve shop/production", Identifier: "approve"}}, runs[0].Actions)
	assert.Contains(t, runs[0].Summary, "/approve production")

	f.report(state("web", "production", f.c1, 1, store.StatusApplying))
	f.report(state("web", "production", f.c1, 1, store.StatusConverged))
	runs = f.checkRuns("pvnbot: shop/production")
	require.Len(t, runs, 2, "a completed run is final: the apply gets a new one")
	assert.Equal(t, "action_required", runs[0].Conclusion)
	assert.Equal(t, "success", runs[1].Conclusion)
	assert.Empty(t, runs[1].Actions)
}

func TestFailureShowsTheOutputTail(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.runs.FinishRun(context.Background(), store.JobRun{ID: "r7", OutputTail: "step 1\nboom: ``` no fence escape\n", ExitCode: 3}))
	web := state("web", "staging", f.c1, 1, store.StatusFailed)
	web.Message = "apply failed: exit code 3: boom"
	web.Attempts = 1
	web.LastApply = store.Outcome{RunID: "r7", Finished: t0, ExitCode: 3}
	f.report(web)
	runs := f.checkRuns(staging)
	require.Len(t, runs, 1)
	assert.Equal(t, "failure", runs[0].Conclusion)
	assert.Equal(t, "failed: web", runs[0].Title)
	assert.Contains(t, runs[0].Summary, "### web: apply exited 3\n\n````\nstep 1\nboom: ``` no fence escape\n````\n")

	// Retrying after the failure keeps the run failed until it converges.
	web.Status = store.StatusApplying
	f.report(web)
	runs = f.checkRuns(staging)
	require.Len(t, runs, 1, "no new run for each attempt")
	assert.Contains(t, runs[0].Summary, "| web | ❌ APPLYING |", "the failed run's output shows the attempt")
	web.Status, web.Attempts = store.StatusConverged, 0
	f.report(web)
	runs = f.checkRuns(staging)
	require.Len(t, runs, 2, "converged: a new run, the failed one being final")
	assert.Equal(t, "success", runs[1].Conclusion)
}

func TestANewCommitSupersedesTheRunInProgress(t *testing.T) {
	f := newFixture(t)
	f.report(state("web", "staging", f.c1, 1, store.StatusApplying), state("api", "staging", f.c1, 1, store.StatusConverged))
	f.report(state("web", "staging", f.c2, 2, store.StatusPending))
	runs := f.checkRuns(staging)
	require.Len(t, runs, 2)
	assert.Equal(t, f.c1, runs[0].HeadSHA)
	assert.Equal(t, "neutral", runs[0].Conclusion)
	assert.Equal(t, "superseded by commit "+f.c2[:7], runs[0].Title)
	assert.Equal(t, f.c2, runs[1].HeadSHA, "the channel's check run is on the commit that brought its desired state")
	assert.Contains(t, runs[1].Summary, "| api | ✅ CONVERGED | `"+f.c1[:7]+"`", "it covers every target of the channel")
}

func TestRestartedReporterFindsItsRuns(t *testing.T) {
	f := newFixture(t)
	web := state("web", "staging", f.c1, 1, store.StatusApplying)
	f.report(web)
	f.start()
	f.r.Seed([]store.TargetState{web})
	f.flush()
	web.Status = store.StatusConverged
	f.report(web)
	runs := f.checkRuns(staging)
	require.Len(t, runs, 1, "found by name on the commit, not created again")
	assert.Equal(t, "success", runs[0].Conclusion)

	f.start()
	f.r.Seed([]store.TargetState{web})
	f.flush()
	assert.Len(t, f.gh.CheckRunWrites(f.repo), 2, "a restart with nothing new writes nothing")
}

func TestRateLimitsAreHonoured(t *testing.T) {
	f := newFixture(t)
	reset := t0.Add(10 * time.Minute)
	f.gh.RateLimitNext(1, reset)
	f.r.TargetChanged(context.Background(), state("web", "staging", f.c1, 1, store.StatusApplying))
	require.Eventually(t, func() bool {
		for _, r := range f.gh.Requests() {
			if r.Status == 403 {
				return true
			}
		}
		return false
	}, 20*time.Second, time.Millisecond)
	f.r.TargetChanged(context.Background(), state("web", "staging", f.c1, 1, store.StatusConverged))
	f.clock.Advance(9 * time.Minute)
	assert.Zero(t, f.writes(), "nothing is written before the reset")
	f.clock.Set(reset)
	f.flush()
	writes := f.gh.CheckRunWrites(f.repo)
	require.Len(t, writes, 1, "then the latest state only")
	assert.Equal(t, "success", writes[0].Conclusion)
}

func TestConfigProblemsAreAnnotated(t *testing.T) {
	f := newFixture(t)
	var problems config.Errors
	for i := range 120 {
		problems = append(problems, &config.Error{Pos: config.Pos{File: "services/web.pvn.yaml", Line: i + 1, Col: 3}, Msg: fmt.Sprintf("problem %d", i)})
	}
	warnings := config.Errors{{Pos: config.Pos{File: "a.pvn.yaml", Line: 2, Col: 1}, Msg: "labels are ignored", Severity: config.SeverityWarning}}
	f.r.ReportProblems(f.c1, problems, warnings)
	f.r.ReportProblems(f.c1, problems, warnings) // a redelivery
	f.flush()
	runs := f.checkRuns(checks.ConfigsCheckName)
	require.Len(t, runs, 1)
	assert.Equal(t, "failure", runs[0].Conclusion)
	assert.Equal(t, "120 config problems", runs[0].Title)
	require.Len(t, runs[0].Annotations, 121)
	assert.Equal(t, 7, runs[0].Annotations[6].GetStartLine())
	assert.Equal(t, "services/web.pvn.yaml", runs[0].Annotations[6].GetPath())
	assert.Equal(t, "problem 6", runs[0].Annotations[6].GetMessage())
	assert.Equal(t, "warning", runs[0].Annotations[120].GetAnnotationLevel())
	var counts []int
	for _, w := range f.gh.CheckRunWrites(f.repo) {
		counts = append(counts, w.Annotations)
	}
	assert.Equal(t, []int{50, 50, 21}, counts, "50 a request")
	assert.Contains(t, runs[0].Summary, "- `a.pvn.yaml:2:1`: warning: labels are ignored")
	f.r.ReportProblems(f.c2, nil, nil)
	f.flush()
	assert.Len(t, f.checkRuns(checks.ConfigsCheckName), 1, "no configs check without problems or warnings")
}

func TestSummaryStaysWithinGitHubsLimit(t *testing.T) {
	f := newFixture(t)
	var states []store.TargetState
	for i := range 400 {
		st := state(fmt.Sprintf("service-%03d", i), "staging", f.c1, 1, store.StatusConverged)
		st.Info = []store.InfoOutput{{Name: "notes", Text: strings.Repeat("x", 300)}}
		states = append(states, st)
	}
	f.report(states...)
	runs := f.checkRuns(staging)
	require.Len(t, runs, 1, "one run, its output updated")
	assert.LessOrEqual(t, len([]rune(runs[0].Summary)), 65535)
	assert.Contains(t, runs[0].Summary, "(truncated: GitHub shows at most 65,535 characters)")
}

// abusedAPI answers the first write with GitHub's secondary rate limit.
type abusedAPI struct {
	checks.API
	once sync.Once
	hit  chan struct{}
}

func (a *abusedAPI) CreateCheckRun(ctx context.Context, owner, repo string, opts github.CreateCheckRunOptions) (*github.CheckRun, *github.Response, error) {
	var err error
	a.once.Do(func() {
		err = &github.AbuseRateLimitError{Message: "You have exceeded a secondary rate limit", RetryAfter: github.Ptr(30 * time.Second)}
		close(a.hit)
	})
	if err != nil {
		return nil, nil, err
	}
	return a.API.CreateCheckRun(ctx, owner, repo, opts)
}

func TestSecondaryRateLimitIsHonoured(t *testing.T) {
	f := newFixture(t)
	abused := &abusedAPI{API: f.api(), hit: make(chan struct{})}
	f.startWith(abused)
	f.r.TargetChanged(context.Background(), state("web", "staging", f.c1, 1, store.StatusApplying))
	<-abused.hit
	f.r.TargetChanged(context.Background(), state("web", "staging", f.c1, 1, store.StatusConverged))
	// The reporter reads the clock when the error comes back: time moves
	// once it waits for Retry-After.
	require.Eventually(t, func() bool { return f.clock.Pending() > 0 }, 10*time.Second, time.Millisecond, "the reporter waits on a timer")
	f.clock.Advance(29 * time.Second)
	assert.Zero(t, f.writes(), "nothing is written before Retry-After")
	f.clock.Advance(time.Second)
	f.flush()
	writes := f.gh.CheckRunWrites(f.repo)
	require.Len(t, writes, 1, "then the latest state only")
	assert.Equal(t, "success", writes[0].Conclusion)
}

// While only a channel's progress changes (a target converged, another
// still applying), its check run is not rewritten at each change: a new
// status is written at once, progress at most every ProgressInterval.
func TestProgressIsNotWrittenAtEveryChange(t *testing.T) {
	f := newFixture(t)
	var states []store.TargetState
	for i := range 100 {
		states = append(states, state(fmt.Sprintf("svc-%02d", i), "staging", f.c1, 1, store.StatusApplying))
	}
	f.report(states...)
	created := f.writes()
	require.NotZero(t, created)
	for i := range 99 {
		f.r.TargetChanged(context.Background(), state(fmt.Sprintf("svc-%02d", i), "staging", f.c1, 1, store.StatusConverged))
	}
	f.report(state("svc-99", "staging", f.c1, 1, store.StatusConverged))
	writes := f.gh.CheckRunWrites(f.repo)
	var got []string
	for _, w := range writes {
		got = append(got, w.Method+" "+w.Status+w.Conclusion+" "+w.Title[:min(len(w.Title), 30)])
	}
	require.Len(t, writes, created+1, "99 changes of progress, then success: one more write: %v", got)
	assert.Equal(t, "success", writes[created].Conclusion)
}

// A channel shown waiting for approval while its targets join it one by
// one is not rewritten at each: what it lists is progress. An approval
// given is written at once.
func TestWaitingForApprovalIsNotWrittenAtEveryChange(t *testing.T) {
	f := newFixture(t)
	gated := func(service string, status store.Status, msg string) store.TargetState {
		st := state(service, "production", f.c1, 1, status)
		st.Target.Policy.RequireApprovalBeforeApply = true
		st.Message = msg
		return st
	}
	states := []store.TargetState{gated("svc-00", store.StatusWaitingManualApproval, "waiting for approval: 0 of 2 approvers")}
	for i := 1; i < 50; i++ {
		states = append(states, gated(fmt.Sprintf("svc-%02d", i), store.StatusWaitingPreconditions, "waiting for release channel staging"))
	}
	f.report(states...)
	created := f.writes()
	runs := f.checkRuns("pvnbot: shop/production")
	require.Len(t, runs, 1)
	require.Equal(t, "action_required", runs[0].Conclusion)
	for i := 1; i < 49; i++ {
		f.r.TargetChanged(context.Background(), gated(fmt.Sprintf("svc-%02d", i), store.StatusWaitingManualApproval, "waiting for approval: 0 of 2 approvers"))
	}
	f.report(gated("svc-49", store.StatusWaitingManualApproval, "waiting for approval: 0 of 2 approvers"))
	require.Equal(t, created+1, f.writes(), "48 more targets waiting: one write, at the end")

	ctx := context.Background()
	require.NoError(t, f.runs.AddApproval(ctx, store.Approval{ID: "a1", Key: states[0].Key(), Commit: f.c1, Who: "alice", At: t0, Source: "button"}))
	f.r.TargetChanged(ctx, gated("svc-00", store.StatusWaitingManualApproval, "waiting for approval: 1 of 2 approvers"))
	require.Eventually(t, func() bool { return f.writes() == created+2 }, 10*time.Second, time.Millisecond, "an approval is shown at once, the clock standing still")
	assert.Contains(t, f.gh.CheckRunWrites(f.repo)[created+1].Summary, "approved by @alice")
}

// Flush on a Reporter whose Run has returned says at once what it could
// not write, rather than waiting for its context.
func TestFlushAfterRunReturnedDoesNotWait(t *testing.T) {
	f := newFixture(t)
	f.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, f.r.Flush(ctx), "nothing to write")
	f.r.TargetChanged(context.Background(), state("web", "staging", f.c1, 1, store.StatusApplying))
	err := f.r.Flush(ctx)
	require.ErrorContains(t, err, "not all written: the reporter stopped")
	assert.NoError(t, ctx.Err(), "answered before the deadline")
}
