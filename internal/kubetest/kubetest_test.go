package kubetest

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

var plane *Plane

func TestMain(m *testing.M) {
	os.Exit(Main(m, Options{}, &plane))
}

// A Job's pod really runs on the node: its exit code and its log come back
// through the apiserver.
func TestJobRunsOnTheNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := plane.Client

	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "smoke-", Namespace: "default"},
		Spec: batchv1.JobSpec{
			BackoffLimit: new(int32(0)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name:    "main",
					Image:   "busybox",
					Command: []string{"sh", "-c", `echo "hello $WHO"; echo oops >&2; exit 3`},
					Env:     []corev1.EnvVar{{Name: "WHO", Value: "kubetest"}},
				}},
			}},
		},
	}
	job, err := c.BatchV1().Jobs("default").Create(ctx, job, metav1.CreateOptions{})
	require.NoError(t, err)

	pod := plane.UntilPod(t, ctx, "default", "batch.kubernetes.io/job-name="+job.Name, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodFailed
	})
	require.Len(t, pod.Status.ContainerStatuses, 1)
	term := pod.Status.ContainerStatuses[0].State.Terminated
	require.NotNil(t, term)
	assert.Equal(t, int32(3), term.ExitCode)
	assert.Equal(t, plane.NodeName, pod.Spec.NodeName)

	logs, err := c.CoreV1().Pods("default").GetLogs(pod.Name, &corev1.PodLogOptions{Container: "main"}).Stream(ctx)
	require.NoError(t, err)
	defer logs.Close()
	text, err := io.ReadAll(logs)
	require.NoError(t, err)
	assert.Equal(t, "hello kubetest\noops\n", string(text))

	// The Job controller sees the failure too.
	jobLW := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", job.Name).String()
			return c.BatchV1().Jobs("default").List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", job.Name).String()
			return c.BatchV1().Jobs("default").Watch(ctx, o)
		},
	}
	_, err = watchtools.UntilWithSync(ctx, jobLW, &batchv1.Job{}, nil, func(e watch.Event) (bool, error) {
		j, ok := e.Object.(*batchv1.Job)
		if !ok {
			return false, nil
		}
		for _, cond := range j.Status.Conditions {
			if cond.Type == batchv1.JobFailed && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	require.NoError(t, err, plane.Log("kube-controller-manager"))
}

func TestBinDirSaysHowToBuild(t *testing.T) {
	t.Setenv("PVNBOT_KUBE_BIN", t.TempDir())
	_, err := BinDir()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "run hack/kube/build.sh")
}
