package kubee2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/pvnbot/pvnbot/internal/runner/kube"
	"github.com/pvnbot/pvnbot/internal/store"
)

// maxConcurrency 2 over 6 targets: every apply blocks until the test
// releases it, so an apply Job started beyond the cap would stay alive and be
// seen. A watch on the apply Jobs counts those alive and not yet released at
// every change; at each step the test also lists the Jobs.
func TestMaxConcurrencyTwoOverSix(t *testing.T) {
	const targets, limit = 6, 2
	ctx := ctxFor(t, 5*time.Minute)
	gates := t.TempDir()
	apply := script(t, gates, "apply.sh", fmt.Sprintf(`while [ ! -e %q/"$PVN_SERVICE" ]; do sleep 0.05; done
echo "applied $PVN_SERVICE"
`, gates))

	rt := runtimeName("capped")
	r := newRepo(t)
	r.write("runtimes/rt.pvn.yaml", fmt.Sprintf(`runtime:
  name: %s
  custom:
    type: GENERIC
    proxyRuntime:
      runtime: %s
    apply:
      taskConfig:
        program:
          image: example.org/tools:1
          entrypoint: [sh]
          cmd: [%q]
      maxConcurrency: %d
`, rt, cluster, apply, limit))
	var services []string
	for i := range targets {
		services = append(services, fmt.Sprintf("svc-%d", i+1))
	}
	r.demo(rt, services...)
	commit := commitOf(3)

	w := watchApplies(t, ctx, rt)
	b := startBot(t, store.NewMemory().Repo(repoName), commit, r.targets(commit))

	for released := 0; released < targets; released++ {
		want := min(limit, targets-released)
		blocked := w.waitFor(t, fmt.Sprintf("%d blocked applies, the released ones finished", want), func(alive, released []string) bool {
			return len(alive) >= want && len(released) == 0
		})
		var unfinished []string
		for _, job := range jobsOf(t, ctx, rt, kube.LabelAction+"=apply") {
			if !finished(&job) {
				unfinished = append(unfinished, job.Labels[kube.LabelService])
			}
		}
		require.LessOrEqual(t, len(unfinished), limit, "apply Jobs alive: %v", unfinished)
		require.Len(t, unfinished, want)
		w.release(t, blocked[0], gates)
	}
	b.rec.waitFor(t, "every target CONVERGED", allConverged(targets))

	assert.Equal(t, limit, w.maxAlive(), "most apply Jobs alive and not released at once")
	applies := jobsOf(t, ctx, rt, kube.LabelAction+"=apply")
	assert.Len(t, applies, targets, "one apply Job per target")
}

// applyWatch follows the apply Jobs of a runtime.
type applyWatch struct {
	mu       sync.Mutex
	jobs     map[string]*batchv1.Job // by name
	released map[string]bool         // by service
	max      int                     // most alive, unreleased Jobs seen at once
	changed  chan struct{}
}

func watchApplies(t testing.TB, ctx context.Context, rt string) *applyWatch {
	w := &applyWatch{jobs: map[string]*batchv1.Job{}, released: map[string]bool{}, changed: make(chan struct{})}
	sel := kube.LabelRuntime + "=" + rt + "," + kube.LabelAction + "=apply"
	jobs := plane.Client.BatchV1().Jobs(kube.DefaultNamespace(rt))
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel
			return jobs.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel
			return jobs.Watch(ctx, o)
		},
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchtools.UntilWithSync(ctx, lw, &batchv1.Job{}, nil, func(e watch.Event) (bool, error) {
			if job, ok := e.Object.(*batchv1.Job); ok {
				w.update(e.Type, job)
			}
			return false, nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

func (w *applyWatch) update(typ watch.EventType, job *batchv1.Job) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if typ == watch.Deleted {
		delete(w.jobs, job.Name)
	} else {
		w.jobs[job.Name] = job
	}
	alive, _ := w.aliveLocked()
	w.max = max(w.max, len(alive))
	close(w.changed)
	w.changed = make(chan struct{})
}

// aliveLocked returns the services of the unfinished Jobs, those not
// released and those released, sorted.
func (w *applyWatch) aliveLocked() (blocked, released []string) {
	for _, job := range w.jobs {
		if finished(job) {
			continue
		}
		svc := job.Labels[kube.LabelService]
		if w.released[svc] {
			released = append(released, svc)
		} else {
			blocked = append(blocked, svc)
		}
	}
	slices.Sort(blocked)
	slices.Sort(released)
	return blocked, released
}

func (w *applyWatch) maxAlive() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max
}

// waitFor waits until cond holds for the blocked and released Jobs alive,
// and returns the blocked ones.
func (w *applyWatch) waitFor(t testing.TB, what string, cond func(blocked, released []string) bool) []string {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		blocked, released := w.aliveLocked()
		changed := w.changed
		w.mu.Unlock()
		if cond(blocked, released) {
			return blocked
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("waiting for %s: timed out; blocked %v, released %v", what, blocked, released)
		}
	}
}

// release lets the apply of service end: marked released first, so that
// the watch never counts it as blocked once its gate is open.
func (w *applyWatch) release(t testing.TB, service, gates string) {
	t.Helper()
	w.mu.Lock()
	w.released[service] = true
	w.mu.Unlock()
	require.NoError(t, os.WriteFile(filepath.Join(gates, service), nil, 0o644))
}
