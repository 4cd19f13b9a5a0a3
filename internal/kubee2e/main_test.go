package kubee2e

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/kubetest"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/runner/kube"
	"github.com/pvnbot/pvnbot/internal/runner/mux"
	"github.com/pvnbot/pvnbot/internal/store"
)

// cluster is the name under which the test plane is linked.
const cluster = "test-cluster"

// waitTimeout bounds every wait on the plane or the engine: generous, since
// the machine is shared, but a hang still ends.
const waitTimeout = 90 * time.Second

var plane *kubetest.Plane

// TestMain starts one control plane for the package. Its node runs
// containers' commands with pvn-wrapper and the system's tools on PATH.
func TestMain(m *testing.M) { os.Exit(kubetest.MainWithWrapper(m, &plane)) }

var runtimeSeq atomic.Int64

// runtimeName makes a runtime name not used before by this test binary, so
// that each test, and each -count repetition, has a namespace of its own.
func runtimeName(base string) string {
	return fmt.Sprintf("%s-%d", base, runtimeSeq.Add(1))
}

// commitOf makes a full-length fake SHA from n.
func commitOf(n int) string { return fmt.Sprintf("%040x", 0xc0ffee000+n) }

// repo is a folder of *.pvn.yaml files standing for the repository at a
// commit.
type repo struct {
	t   testing.TB
	dir string
}

func newRepo(t testing.TB) *repo { return &repo{t: t, dir: t.TempDir()} }

func (r *repo) write(name, text string) {
	r.t.Helper()
	path := filepath.Join(r.dir, name)
	require.NoError(r.t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(r.t, os.WriteFile(path, []byte(text), 0o644))
}

// targets loads, validates and builds the repository as the bot does, with
// the test plane linked as cluster.
func (r *repo) targets(commit string) []desired.Target {
	r.t.Helper()
	set, err := config.LoadDir(r.dir)
	require.NoError(r.t, err)
	require.NoError(r.t, set.Validate(&config.Linked{KubernetesRuntimes: []string{cluster}}))
	targets, err := desired.Build(set, commit, desired.Options{})
	require.NoError(r.t, err)
	return targets
}

// script writes a shell script into dir and returns its path.
func script(t testing.TB, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o755))
	return path
}

// kubeRunner is the runner the bot would build: the mux over a Kubernetes
// runner linked to the plane, without a local runner.
func kubeRunner(t testing.TB) *mux.Mux {
	k := kube.New(map[string]kubernetes.Interface{cluster: plane.Client}, kube.WithLogger(testLogger(t)))
	return mux.New(nil, k, []string{cluster})
}

// testLogger logs to the test's output, shown when it fails; benchmarks
// log nothing.
func testLogger(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// bot is one engine running over a store, as `bot run` would.
type bot struct {
	engine *reconcile.Engine
	rec    *recorder
	cancel context.CancelCauseFunc
	done   chan error
}

// repoName is the repository the tests' records belong to.
const repoName = "github.com/acme/deploys"

// startBot starts an engine over st with the Kubernetes runner, gives it
// targets at commit and runs it until stop (or the test's end).
func startBot(t testing.TB, st reconcile.Store, commit string, targets []desired.Target) *bot {
	t.Helper()
	rec := newRecorder()
	ctx, cancel := context.WithCancelCause(context.Background())
	engine, err := reconcile.New(ctx, reconcile.Options{
		Runner:   kubeRunner(t),
		Store:    st,
		Reporter: rec,
		Logger:   testLogger(t),
	})
	require.NoError(t, err)
	require.NoError(t, engine.SetDesired(ctx, commit, targets))
	b := &bot{engine: engine, rec: rec, cancel: cancel, done: make(chan error, 1)}
	go func() { b.done <- engine.Run(ctx) }()
	t.Cleanup(func() { b.stop(t, nil) })
	return b
}

// stop cancels the engine's Run with cause and waits for it to return.
func (b *bot) stop(t testing.TB, cause error) {
	t.Helper()
	b.cancel(cause)
	select {
	case err, ok := <-b.done:
		if ok {
			require.NoError(t, err)
			close(b.done)
		}
	case <-time.After(waitTimeout):
		t.Fatal("engine did not stop")
	}
}

// recorder is the engine's Reporter: it keeps the latest state of each
// target and wakes the waiters at each change.
type recorder struct {
	mu      sync.Mutex
	states  map[desired.Key]store.TargetState
	changed chan struct{}
}

func newRecorder() *recorder {
	return &recorder{states: map[desired.Key]store.TargetState{}, changed: make(chan struct{})}
}

func (r *recorder) TargetChanged(_ context.Context, st store.TargetState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states[st.Key()] = st
	close(r.changed)
	r.changed = make(chan struct{})
}

// waitFor waits until cond holds for the targets' states and returns them.
// A FAILED target ends the wait at once: no test here expects one.
func (r *recorder) waitFor(t testing.TB, what string, cond func(map[desired.Key]store.TargetState) bool) map[desired.Key]store.TargetState {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		states := maps.Clone(r.states)
		changed := r.changed
		r.mu.Unlock()
		for _, st := range states {
			if st.Status == store.StatusFailed {
				t.Fatalf("waiting for %s: %s is FAILED: %s\nnode agent:\n%s", what, st.Key(), st.Message, plane.Log("pvn-nodeagent"))
			}
		}
		if cond(states) {
			return states
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("waiting for %s: timed out after %s; targets:\n%s", what, waitTimeout, describe(states))
		}
	}
}

// allConverged holds when n targets are CONVERGED.
func allConverged(n int) func(map[desired.Key]store.TargetState) bool {
	return func(states map[desired.Key]store.TargetState) bool {
		c := 0
		for _, st := range states {
			if st.Status == store.StatusConverged {
				c++
			}
		}
		return c == n
	}
}

func describe(states map[desired.Key]store.TargetState) string {
	var b strings.Builder
	for _, k := range slices.SortedFunc(maps.Keys(states), func(a, b desired.Key) int { return strings.Compare(a.String(), b.String()) }) {
		fmt.Fprintf(&b, "  %s: %s %s\n", k, states[k].Status, states[k].Message)
	}
	return b.String()
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// jobsOf lists the Jobs of a runtime in its default namespace whose labels
// also match extra (e.g. "pvnbot.dev/action=apply").
func jobsOf(t testing.TB, ctx context.Context, rt string, extra ...string) []batchv1.Job {
	t.Helper()
	sel := append([]string{kube.LabelRuntime + "=" + rt}, extra...)
	list, err := plane.Client.BatchV1().Jobs(kube.DefaultNamespace(rt)).List(ctx, metav1.ListOptions{LabelSelector: strings.Join(sel, ",")})
	require.NoError(t, err)
	return list.Items
}

// finished tells whether the Job controller marked the Job complete or failed.
func finished(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// applyRuns returns the audit log's apply runs of key.
func applyRuns(t testing.TB, ctx context.Context, st store.Store, key desired.Key) []store.JobRun {
	t.Helper()
	runs, err := st.Runs(ctx, key, 0)
	require.NoError(t, err)
	return slices.DeleteFunc(runs, func(r store.JobRun) bool { return r.Action != runner.ActionApply })
}
