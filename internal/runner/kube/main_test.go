package kube

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/pvnbot/pvnbot/internal/clock"
	"github.com/pvnbot/pvnbot/internal/kubetest"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// cluster is the proxy runtime name of the test plane.
const cluster = "test-cluster"

var plane *kubetest.Plane

// TestMain starts one control plane for the package. Its node runs
// containers' commands with pvn-wrapper and the system's tools on PATH.
func TestMain(m *testing.M) { os.Exit(kubetest.MainWithWrapper(m, &plane)) }

var runtimeSeq atomic.Int64

// runtimeName makes a runtime name not used before by this test binary, so
// that each test, and each -count repetition, has namespaces of its own.
func runtimeName(base string) string {
	return fmt.Sprintf("%s-%d", base, runtimeSeq.Add(1))
}

func newRunner(opts ...Option) *Runner {
	return New(map[string]kubernetes.Interface{cluster: plane.Client}, opts...)
}

// taskSpec is a taskConfig run of a shell script on the test plane.
func taskSpec(t testing.TB, runtime string, action runner.Action, script string) runner.Spec {
	return runner.Spec{
		RunID:          fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()),
		Action:         action,
		Service:        "shop",
		Application:    "demo",
		ReleaseChannel: "staging",
		Runtime:        runtime,
		Commit:         "0123456789abcdef0123456789abcdef01234567",
		DesiredVersion: "v1",
		ProxyRuntime:   cluster,
		Image:          "example.org/tools:1",
		Entrypoint:     []string{"sh", "-c"},
		Cmd:            []string{script},
		Env: []runner.EnvVar{
			{Name: "PVN_ACTION", Value: string(action)},
			{Name: "PVN_SERVICE", Value: "shop"},
		},
	}
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// untilJobGone watches a Job until it is deleted.
func untilJobGone(t testing.TB, ctx context.Context, ns, name string) {
	t.Helper()
	jobs := plane.Client.BatchV1().Jobs(ns)
	w, err := jobs.Watch(ctx, metav1.SingleObject(metav1.ObjectMeta{Name: name}))
	require.NoError(t, err)
	defer w.Stop()
	if _, err := jobs.Get(ctx, name, metav1.GetOptions{}); err != nil {
		return
	}
	_, err = watchtools.UntilWithoutRetry(ctx, w, func(e watch.Event) (bool, error) {
		return e.Type == watch.Deleted, nil
	})
	require.NoError(t, err, "job %s/%s not deleted", ns, name)
}

func jobsOfRun(t testing.TB, ctx context.Context, ns, runID string) []batchv1.Job {
	t.Helper()
	list, err := plane.Client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelRunID + "=" + LabelValue(runID)})
	require.NoError(t, err)
	return list.Items
}

// watchedClock is a fake clock that says when timers are set, so that a
// test advances it only once the runner waits on it.
type watchedClock struct {
	*clock.Fake
	set chan time.Duration
}

func newWatchedClock() *watchedClock {
	return &watchedClock{Fake: clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), set: make(chan time.Duration, 16)}
}

func (c *watchedClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	t := c.Fake.AfterFunc(d, f)
	c.set <- d
	return t
}

// waitTimers waits until n timers were set.
func (c *watchedClock) waitTimers(t testing.TB, ctx context.Context, n int) {
	t.Helper()
	for range n {
		select {
		case <-c.set:
		case <-ctx.Done():
			t.Fatalf("runner set no timer: %v", ctx.Err())
		}
	}
}

// countingClient counts the namespaces created through it.
type countingClient struct {
	kubernetes.Interface
	mu      sync.Mutex
	creates int
}

func (c *countingClient) CoreV1() corev1client.CoreV1Interface {
	return countingCore{CoreV1Interface: c.Interface.CoreV1(), c: c}
}

func (c *countingClient) namespaceCreates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.creates
}

type countingCore struct {
	corev1client.CoreV1Interface
	c *countingClient
}

func (cc countingCore) Namespaces() corev1client.NamespaceInterface {
	return countingNamespaces{NamespaceInterface: cc.CoreV1Interface.Namespaces(), c: cc.c}
}

type countingNamespaces struct {
	corev1client.NamespaceInterface
	c *countingClient
}

func (n countingNamespaces) Create(ctx context.Context, ns *corev1.Namespace, opts metav1.CreateOptions) (*corev1.Namespace, error) {
	n.c.mu.Lock()
	n.c.creates++
	n.c.mu.Unlock()
	return n.NamespaceInterface.Create(ctx, ns, opts)
}

// untilPod watches the pods of run runID in namespace ns until cond holds
// for one of them.
func untilPod(t testing.TB, ctx context.Context, ns, runID string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	return plane.UntilPod(t, ctx, ns, LabelRunID+"="+LabelValue(runID), cond)
}
