package kubetest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// UntilPod watches the pods of namespace ns matching the label selector
// until cond holds for one of them, and returns that pod. It fails t, with
// the node agent's log, when ctx ends first.
func (p *Plane) UntilPod(t testing.TB, ctx context.Context, ns, selector string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	pods := p.Client.CoreV1().Pods(ns)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return pods.Watch(ctx, o)
		},
	}
	ev, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, nil, func(e watch.Event) (bool, error) {
		pod, ok := e.Object.(*corev1.Pod)
		return ok && e.Type != watch.Deleted && cond(pod), nil
	})
	require.NoError(t, err, p.Log("pvn-nodeagent"))
	return ev.Object.(*corev1.Pod)
}

// PodRunning holds when a container of pod is running.
func PodRunning(pod *corev1.Pod) bool {
	for _, s := range pod.Status.ContainerStatuses {
		if s.State.Running != nil {
			return true
		}
	}
	return false
}
