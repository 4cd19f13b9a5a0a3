package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/clock"
	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// call is one job the fake runner was asked to run.
type call struct {
	Key    desired.Key
	Action runner.Action
	RunID  string
	Commit string
	At     time.Duration // since t0
}

// fakeRunner answers each (target, action) with scripted results in order,
// repeating the last one; unscripted jobs exit 0. Before answering it calls
// BeforeRun, which may block or act on the engine.
type fakeRunner struct {
	clock *clock.Fake

	mu        sync.Mutex
	script    map[string][]runner.Result
	errs      map[string]error
	calls     []call
	inflight  map[runner.Action]int
	maxApply  int
	BeforeRun func(spec runner.Spec)
}

func newFakeRunner(c *clock.Fake) *fakeRunner {
	return &fakeRunner{clock: c, script: map[string][]runner.Result{}, errs: map[string]error{}, inflight: map[runner.Action]int{}}
}

func scriptKey(k desired.Key, a runner.Action) string { return k.String() + "#" + string(a) }

// exits scripts the exit codes of a target's action.
func (r *fakeRunner) exits(k desired.Key, a runner.Action, codes ...int) {
	var res []runner.Result
	for _, c := range codes {
		res = append(res, runner.Result{ExitCode: c, Stderr: fmt.Appendf(nil, "%s exited %d", a, c)})
	}
	r.results(k, a, res...)
}

func (r *fakeRunner) results(k desired.Key, a runner.Action, res ...runner.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script[scriptKey(k, a)] = res
}

func (r *fakeRunner) fail(k desired.Key, a runner.Action, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[scriptKey(k, a)] = err
}

func (r *fakeRunner) Run(ctx context.Context, spec runner.Spec) (runner.Result, error) {
	k := desired.Key{Application: spec.Application, Service: spec.Service, ReleaseChannel: spec.ReleaseChannel}
	r.mu.Lock()
	r.calls = append(r.calls, call{Key: k, Action: spec.Action, RunID: spec.RunID, Commit: spec.Commit, At: r.clock.Now().Sub(t0)})
	r.inflight[spec.Action]++
	r.maxApply = max(r.maxApply, r.inflight[runner.ActionApply])
	hook := r.BeforeRun
	r.mu.Unlock()
	if hook != nil {
		hook(spec)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight[spec.Action]--
	sk := scriptKey(k, spec.Action)
	if err := r.errs[sk]; err != nil {
		return runner.Result{}, err
	}
	res := runner.Result{}
	if s := r.script[sk]; len(s) > 0 {
		res = s[0]
		if len(s) > 1 {
			r.script[sk] = s[1:]
		}
	}
	res.Started, res.Finished = r.clock.Now(), r.clock.Now()
	return res, nil
}

// count is how many times a target's action ran.
func (r *fakeRunner) count(k desired.Key, a runner.Action) int {
	n := 0
	for _, c := range r.callsOf(k, a) {
		_ = c
		n++
	}
	return n
}

// times is when a target's action ran, since t0.
func (r *fakeRunner) times(k desired.Key, a runner.Action) []time.Duration {
	var out []time.Duration
	for _, c := range r.callsOf(k, a) {
		out = append(out, c.At)
	}
	return out
}

func (r *fakeRunner) callsOf(k desired.Key, a runner.Action) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []call
	for _, c := range r.calls {
		if c.Key == k && c.Action == a {
			out = append(out, c)
		}
	}
	return out
}

// recordingStore remembers every state it saved, so that reports can be
// checked to be durable first.
type recordingStore struct {
	store.Store
	mu      sync.Mutex
	saved   map[string]bool
	saves   int
	commits int
	fail    error // returned by Save while set
}

func stateID(st store.TargetState) string {
	b, _ := json.Marshal(st)
	return string(b)
}

func (s *recordingStore) Save(ctx context.Context, b store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if err := s.Store.Save(ctx, b); err != nil {
		return err
	}
	s.commits++
	for _, st := range b.States {
		s.saved[stateID(st)] = true
		s.saves++
	}
	return nil
}

// failWith makes Save fail with err; nil: succeed again.
func (s *recordingStore) failWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// commitCount is how many Save calls succeeded so far.
func (s *recordingStore) commitCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits
}

// saveCount is how many target states were saved so far.
func (s *recordingStore) saveCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}

func (s *recordingStore) wasSaved(st store.TargetState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saved[stateID(st)]
}

// fakeReporter records reports and checks each was saved before.
type fakeReporter struct {
	store         *recordingStore
	mu            sync.Mutex
	got           []store.TargetState
	notYetDurable []string
	onReport      func(st store.TargetState)
}

func (r *fakeReporter) TargetChanged(ctx context.Context, st store.TargetState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.store.wasSaved(st) {
		r.notYetDurable = append(r.notYetDurable, st.Key().String()+" "+string(st.Status))
	}
	r.got = append(r.got, st)
	if r.onReport != nil {
		r.onReport(st)
	}
}

// statuses is the sequence of statuses reported for a target.
func (r *fakeReporter) statuses(k desired.Key) []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Status
	for _, st := range r.got {
		if st.Key() == k && (len(out) == 0 || out[len(out)-1] != st.Status) {
			out = append(out, st.Status)
		}
	}
	return out
}

// world is an engine with a fake clock, runner, store and reporter.
type world struct {
	t        *testing.T
	ctx      context.Context
	clock    *clock.Fake
	runner   *fakeRunner
	store    *recordingStore
	reporter *fakeReporter
	e        *Engine
	commits  int
	runIDs   int
	ctxOfRun context.Context
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, ctx: context.Background(), clock: clock.NewFake(t0)}
	w.runner = newFakeRunner(w.clock)
	w.store = &recordingStore{Store: store.NewMemory().Repo("github.com/acme/deploys"), saved: map[string]bool{}}
	w.reporter = &fakeReporter{store: w.store}
	w.restart()
	t.Cleanup(func() {
		require.Empty(t, w.reporter.notYetDurable, "reported before saved")
	})
	return w
}

// restart makes a new engine over the same store, as after a bot restart.
func (w *world) restart() { w.restartWith(Options{}) }

// restartWith restarts with opts, whose Runner, Store, Reporter, Clock and
// NewRunID are the world's.
func (w *world) restartWith(opts Options) {
	opts.Runner, opts.Store, opts.Reporter, opts.Clock = w.runner, w.store, w.reporter, w.clock
	opts.NewRunID = func() string { w.runIDs++; return fmt.Sprintf("run-%d", w.runIDs) }
	e, err := New(w.ctx, opts)
	require.NoError(w.t, err)
	w.e = e
}

// push sets the desired set at a new commit and settles.
func (w *world) push(targets ...desired.Target) string {
	commit := w.set(targets...)
	w.settle()
	return commit
}

func (w *world) settle() { require.NoError(w.t, w.e.Settle(w.ctx)) }

func (w *world) state(k desired.Key) store.TargetState {
	st, ok := w.e.Target(k)
	require.True(w.t, ok, "no target %s", k)
	return st
}

func (w *world) status(k desired.Key) Status { return w.state(k).Status }

func (w *world) approve(channel, who string, services ...string) ([]desired.Key, error) {
	return w.e.Approve(w.ctx, ApprovalRequest{Application: "shop", ReleaseChannel: channel, Services: services, Who: who})
}

func (w *world) runs(k desired.Key) []store.JobRun {
	runs, err := w.store.Runs(w.ctx, k, 0)
	require.NoError(w.t, err)
	return runs
}

func key(service, channel string) desired.Key {
	return desired.Key{Application: "shop", Service: service, ReleaseChannel: channel}
}

// option shapes a test target.
type option func(*desired.Target)

// tgt builds a desired target of application "shop" on runtime "vm",
// without fetch unless withFetch is given.
func tgt(service, channel string, opts ...option) desired.Target {
	k := key(service, channel)
	spec := func(a runner.Action) runner.Spec {
		return runner.Spec{Action: a, Service: service, Application: k.Application, ReleaseChannel: channel, Runtime: "vm", ProxyRuntime: "local"}
	}
	tg := desired.Target{
		Key: k, Runtime: "vm", Connection: "vm", Digest: "v1", Apply: spec(runner.ActionApply),
		Policy: desired.Policy{
			FetchMode: config.FetchModeExitCode, FetchPollInterval: 30 * time.Second,
			SteadyStatePollInterval: 5 * time.Minute, GetInfoPollInterval: 5 * time.Minute,
			ConvergenceGracePeriod: 10 * time.Minute,
		},
	}
	for _, o := range opts {
		o(&tg)
	}
	for _, s := range []*runner.Spec{&tg.Apply, tg.Fetch, tg.GetInfo} {
		if s != nil {
			s.Runtime = tg.Runtime
		}
	}
	return tg
}

func withFetch(tg *desired.Target) {
	s := tg.Apply
	s.Action = runner.ActionFetch
	tg.Fetch = &s
}

func withGetInfo(tg *desired.Target) {
	s := tg.Apply
	s.Action = runner.ActionGetInfo
	tg.GetInfo = &s
}

func digest(d string) option { return func(tg *desired.Target) { tg.Digest = d } }

func applyID(id string) option {
	return func(tg *desired.Target) { tg.ApplyID, tg.DesiredVersion = id, id }
}

func policy(f func(p *desired.Policy)) option { return func(tg *desired.Target) { f(&tg.Policy) } }

func runtimeName(name string) option { return func(tg *desired.Target) { tg.Runtime = name } }

func stableAfter(channel string) option {
	return func(tg *desired.Target) {
		tg.Preconditions = append(tg.Preconditions, desired.Precondition{ReleaseChannelStable: channel})
	}
}

func manualApproval(everyAction bool, minApprovers int) option {
	return func(tg *desired.Target) {
		tg.Preconditions = append(tg.Preconditions, desired.Precondition{
			ManualApproval: &config.ManualApproval{Name: "gate", EveryAction: everyAction, MinApprovers: minApprovers},
		})
	}
}

// after advances the clock by d, settling at every due time on the way, as
// the engine would see time pass.
func (w *world) after(d time.Duration) {
	end := w.clock.Now().Add(d)
	for {
		w.e.mu.Lock()
		next := w.e.nextDue()
		w.e.mu.Unlock()
		if next.IsZero() || next.After(end) {
			w.clock.Set(end)
			w.settle()
			return
		}
		w.clock.Set(next)
		w.settle()
	}
}

// set sets the desired set at a new commit without settling.
func (w *world) set(targets ...desired.Target) string {
	w.commits++
	commit := fmt.Sprintf("c%d", w.commits)
	for i := range targets {
		targets[i].Commit = commit
		targets[i].Apply.Commit = commit
		if targets[i].DesiredVersion == "" {
			targets[i].DesiredVersion = commit
		}
	}
	require.NoError(w.t, w.e.SetDesired(w.ctx, commit, targets))
	return commit
}

// steadyMax is the longest a steady-state poll of interval d waits: d and
// its jitter of up to 10 %.
func steadyMax(d time.Duration) time.Duration { return d + d/10 }

// assertSteady checks that a steady-state poll came after d, give or take
// its jitter of up to 10 %.
func assertSteady(t *testing.T, d, got time.Duration) {
	t.Helper()
	assert.GreaterOrEqual(t, got, d-d/10, "steady-state poll too early")
	assert.LessOrEqual(t, got, steadyMax(d), "steady-state poll too late")
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
