package ingest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/ingest"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

const runtimeYAML = `runtime:
  name: vm
  custom:
    proxyRuntime: {runtime: local}
    apply:
      taskConfig: {program: {cmd: [deploy, "{{.Params.version}}"]}}
      maxConcurrency: 1
    parameters:
    - {name: version, string: {defaultValue: "1"}}
`

const appYAML = `application:
  name: shop
  releaseChannels:
  - name: staging
    runtimes: [{runtime: vm}]
  - name: production
    runtimes: [{runtime: vm}]
    preconditions:
    - releaseChannelStable: {releaseChannel: staging}
    - manualApproval: {}
`

func serviceYAML(name, version string) string {
	return fmt.Sprintf("service:\n  name: %s\n  application: shop\n  customRuntime:\n    parameterValues:\n    - {name: version, string: %q}\n", name, version)
}

// gatedRunner runs applies that wait at their target's gate: the test lets
// each through in turn.
type gatedRunner struct {
	mu    sync.Mutex
	calls []string // service/channel of each apply started
	gates map[string]chan struct{}
	start chan string
}

func newGatedRunner() *gatedRunner {
	return &gatedRunner{gates: map[string]chan struct{}{}, start: make(chan string, 100)}
}

func (r *gatedRunner) gate(target string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gates[target]
	if g == nil {
		g = make(chan struct{}, 10)
		r.gates[target] = g
	}
	return g
}

func (r *gatedRunner) Run(ctx context.Context, spec runner.Spec) (runner.Result, error) {
	target := spec.Service + "/" + spec.ReleaseChannel
	r.mu.Lock()
	r.calls = append(r.calls, target)
	r.mu.Unlock()
	r.start <- target
	select {
	case <-r.gate(target):
	case <-ctx.Done():
		return runner.Result{}, ctx.Err()
	}
	return runner.Result{}, nil
}

// served is one repository of the process: its Git repository, engine,
// runner and ingest path, over the shared state file.
type served struct {
	t      *testing.T
	git    *gitrepotest.Repo
	runner *gatedRunner
	engine *reconcile.Engine
	ingest *ingest.Repo
}

func serve(t *testing.T, ctx context.Context, db store.DB, name string) *served {
	s := &served{t: t, git: gitrepotest.New(t), runner: newGatedRunner()}
	st := db.Repo(name)
	e, err := reconcile.New(ctx, reconcile.Options{Runner: s.runner, Store: st})
	require.NoError(t, err)
	s.engine = e
	s.ingest = &ingest.Repo{Name: name, Engine: e, Log: st}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- e.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})
	return s
}

// push commits the files and ingests the commit.
func (s *served) push(files map[string]string, remove ...string) {
	s.t.Helper()
	for path, content := range files {
		s.git.Write(path, content)
	}
	for _, path := range remove {
		s.git.Remove(path)
	}
	sha := s.git.Commit("push")
	tree, err := s.git.Open().FS(sha)
	require.NoError(s.t, err)
	res, err := s.ingest.Ingest(context.Background(), "main", sha, tree)
	require.NoError(s.t, err)
	require.Empty(s.t, res.Problems)
}

// started waits for the next apply to start and returns its target.
func (s *served) started() string {
	s.t.Helper()
	select {
	case target := <-s.runner.start:
		return target
	case <-time.After(20 * time.Second):
		s.t.Fatal("no apply started")
		return ""
	}
}

// noneStarted checks that no apply started.
func (s *served) noneStarted() {
	s.t.Helper()
	select {
	case target := <-s.runner.start:
		s.t.Fatalf("unexpected apply of %s", target)
	default:
	}
}

// untouched checks that an idle engine starts nothing once it has read its
// approvals from the store again and done what they ask.
func (s *served) untouched() {
	s.t.Helper()
	require.NoError(s.t, s.engine.Recheck(context.Background()))
	s.idle()
	s.noneStarted()
}

// finish lets one apply of target end.
func (s *served) finish(target string) { s.runner.gate(target) <- struct{}{} }

// idle waits until no job runs and no step is due.
func (s *served) idle() {
	s.t.Helper()
	s.until("idle", func() bool { idle, _ := s.engine.Idle(); return idle })
}

// until waits for cond, looking again at each change of the engine.
func (s *served) until(what string, cond func() bool) {
	s.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		_, changed := s.engine.Idle()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			s.t.Fatalf("the engine never got to: %s", what)
		}
	}
}

func (s *served) status(service, channel string) store.Status {
	s.t.Helper()
	st, ok := s.engine.Target(desired.Key{Application: "shop", Service: service, ReleaseChannel: channel})
	require.True(s.t, ok, "no target %s/%s", service, channel)
	return st.Status
}

// Two repositories with the same application, services, runtime and
// channels, served by one process over one state file, converge apart: one's
// concurrency queue, push, deletion and approval never touch the other.
func TestTwoRepositoriesWithTheSameNamesConvergeApart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pvnbot.db")
	db, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() }) // after the engines stop
	a := serve(t, ctx, db, "github.com/acme/deploys")
	b := serve(t, ctx, db, "github.com/other/deploys")
	files := map[string]string{
		"vm.pvn.yaml": runtimeYAML, "shop.pvn.yaml": appYAML,
		"web.pvn.yaml": serviceYAML("web", "1"), "api.pvn.yaml": serviceYAML("api", "1"),
	}

	// maxConcurrency 1 is per repository: while A's first apply holds A's
	// only slot, B's first apply runs, not queued behind A's.
	a.push(files)
	first := a.started()
	other := map[string]string{"api/staging": "web", "web/staging": "api"}[first]
	a.until(other+" queued behind "+first, func() bool { return a.status(other, "staging") == store.StatusWaitingConcurrency })
	b.push(files)
	bFirst := b.started()
	a.noneStarted()
	b.finish(bFirst)
	bSecond := b.started()
	b.finish(bSecond)
	b.idle()
	assert.Equal(t, store.StatusConverged, b.status("api", "staging"))
	assert.Equal(t, store.StatusConverged, b.status("web", "staging"))
	a.finish(first)
	a.finish(a.started())
	a.idle()
	for _, s := range []*served{a, b} {
		for _, svc := range []string{"api", "web"} {
			assert.Equal(t, store.StatusConverged, s.status(svc, "staging"))
			assert.Equal(t, store.StatusWaitingManualApproval, s.status(svc, "production"))
		}
	}

	// An approval in A releases A's production only.
	keys, err := a.engine.Approve(ctx, reconcile.ApprovalRequest{Application: "shop", ReleaseChannel: "production", Services: []string{"web"}, Who: "alice"})
	require.NoError(t, err)
	assert.Len(t, keys, 1)
	a.finish(a.started())
	a.idle()
	assert.Equal(t, store.StatusConverged, a.status("web", "production"))
	b.untouched()
	assert.Equal(t, store.StatusWaitingManualApproval, b.status("web", "production"))

	// A push to A that removes api and changes web deletes and replaces
	// A's targets only.
	a.push(map[string]string{"web.pvn.yaml": serviceYAML("web", "2")}, "api.pvn.yaml")
	a.finish(a.started())
	a.idle()
	assert.Equal(t, store.StatusDeleted, a.status("api", "staging"))
	assert.Equal(t, store.StatusDeleted, a.status("api", "production"))
	b.untouched()
	for _, svc := range []string{"api", "web"} {
		assert.Equal(t, store.StatusConverged, b.status(svc, "staging"), "B's %s untouched", svc)
		assert.Equal(t, store.StatusWaitingManualApproval, b.status(svc, "production"), "B's %s untouched", svc)
	}

	// The state file keeps them apart too.
	repos, err := db.Repos(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"github.com/acme/deploys", "github.com/other/deploys"}, repos)
	for name, want := range map[string]int{"github.com/acme/deploys": 2, "github.com/other/deploys": 0} {
		states, err := db.Repo(name).LoadTargets(ctx)
		require.NoError(t, err)
		deleted := 0
		for _, st := range states {
			if st.Status == store.StatusDeleted {
				deleted++
			}
		}
		assert.Equal(t, want, deleted, "%s: deleted targets", name)
	}
	assert.ElementsMatch(t, []string{"api/staging", "web/staging", "web/production", "web/staging"}, a.runner.calls)
	assert.ElementsMatch(t, []string{"api/staging", "web/staging"}, b.runner.calls)
}
