package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/pvnbot/pvnbot/internal/kubetest"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// Jobs really run: fetch's exit 2 (drift), apply's file and exit 0, a
// secret-backed variable, stdout and stderr of a job without pvn-wrapper.
func TestRunExitCodesAndOutput(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	r := newRunner()
	out := filepath.Join(t.TempDir(), "applied")

	rt := runtimeName("exit-codes")
	ns := DefaultNamespace(rt)
	_, err := plane.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = plane.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "deploy"},
		StringData: map[string]string{"token": "s3cret"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	tests := map[string]struct {
		action   runner.Action
		script   string
		env      []runner.EnvVar
		wantCode int
		wantOut  string
		check    func(t *testing.T)
	}{
		"fetch says drift": {
			action: runner.ActionFetch, script: `echo "checking $PVN_SERVICE"; exit 2`,
			wantCode: 2, wantOut: "checking shop\n",
		},
		"apply writes a file": {
			action: runner.ActionApply, script: `echo "$PVN_ACTION v1" > "$OUT"`,
			env:      []runner.EnvVar{{Name: "OUT", Value: out}},
			wantCode: 0, wantOut: "",
			check: func(t *testing.T) {
				data, err := os.ReadFile(out)
				require.NoError(t, err)
				assert.Equal(t, "apply v1\n", string(data))
			},
		},
		"sensitive value": {
			action: runner.ActionApply, script: `echo "password=$PVN_PARAM_PASSWORD"`,
			env:      []runner.EnvVar{{Name: "PVN_PARAM_PASSWORD", Value: "hunter2", Sensitive: true}},
			wantCode: 0, wantOut: "password=hunter2\n",
		},
		"secret reference": {
			action: runner.ActionApply, script: `echo "token=$TOKEN" >&2; exit 7`,
			env:      []runner.EnvVar{{Name: "TOKEN", SecretRef: &runner.SecretRef{Name: "deploy", Key: "token"}, Sensitive: true}},
			wantCode: 7, wantOut: "token=s3cret\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			spec := taskSpec(t, rt, tc.action, tc.script)
			spec.Env = append(spec.Env, tc.env...)
			res, err := r.Run(ctx, spec)
			require.NoError(t, err, plane.Log("pvn-nodeagent"))
			assert.Equal(t, tc.wantCode, res.ExitCode)
			assert.Equal(t, tc.wantOut, string(res.Stdout), "without pvn-wrapper the log (stdout and stderr) is stdout")
			assert.False(t, res.Started.IsZero())
			assert.False(t, res.Finished.Before(res.Started))
			if tc.check != nil {
				tc.check(t)
			}
			jobs := jobsOfRun(t, ctx, ns, spec.RunID)
			require.Len(t, jobs, 1)
			for _, e := range jobs[0].Spec.Template.Spec.Containers[0].Env {
				if e.Name == "PVN_PARAM_PASSWORD" {
					assert.Empty(t, e.Value, "a sensitive value is not written into the Job")
					require.NotNil(t, e.ValueFrom)
					secret, err := plane.Client.CoreV1().Secrets(ns).Get(ctx, e.ValueFrom.SecretKeyRef.Name, metav1.GetOptions{})
					require.NoError(t, err)
					require.Len(t, secret.OwnerReferences, 1)
					assert.Equal(t, jobs[0].UID, secret.OwnerReferences[0].UID, "the Job owns the secret")
				}
			}
		})
	}
}

// getInfo's JSON comes back through pvn-wrapper, with stdout and stderr apart,
// and the real exit code even when --success-exit-codes hid it from Kubernetes.
func TestRunThroughWrapper(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	r := newRunner()

	rt := runtimeName("wrapped")
	const info = `{"outputs":[{"name":"url","text":"https://shop.example"}]}`
	spec := taskSpec(t, rt, runner.ActionGetInfo, "")
	spec.Entrypoint = []string{"pvn-wrapper", "exec", "--"}
	spec.Cmd = []string{"sh", "-c", fmt.Sprintf(`echo '%s'; echo "warming up" >&2`, info)}
	res, err := r.Run(ctx, spec)
	require.NoError(t, err, plane.Log("pvn-nodeagent"))
	assert.Equal(t, 0, res.ExitCode)
	assert.JSONEq(t, info, string(res.Stdout))
	assert.Equal(t, "warming up\n", string(res.Stderr))
	assert.Less(t, res.Finished.Sub(res.Started), time.Minute)

	spec = taskSpec(t, rt, runner.ActionFetch, "")
	spec.Entrypoint = []string{"pvn-wrapper", "exec", "--success-exit-codes", "2", "--"}
	spec.Cmd = []string{"sh", "-c", "echo drifted; exit 2"}
	res, err = r.Run(ctx, spec)
	require.NoError(t, err)
	assert.Equal(t, 2, res.ExitCode)
	assert.Equal(t, "drifted\n", string(res.Stdout))

	spec = taskSpec(t, rt, runner.ActionApply, "")
	spec.Entrypoint = []string{"pvn-wrapper", "exec", "--"}
	spec.Cmd = []string{"no-such-program"}
	res, err = r.Run(ctx, spec)
	require.NoError(t, err)
	assert.Equal(t, -1, res.ExitCode)
	assert.Contains(t, res.ExecError, "no-such-program")
}

// A kubernetesConfig job file: ours are its namespace, labels and
// backoffLimit; two objects are refused before anything is created.
func TestRunManifest(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	r := newRunner()

	rt, rtTwo := runtimeName("manifest"), runtimeName("manifest-two")
	spec := taskSpec(t, rt, runner.ActionApply, "")
	spec.Image, spec.Entrypoint, spec.Cmd = "", nil, nil
	spec.Manifest = []byte(`apiVersion: batch/v1
kind: Job
metadata:
  name: deploy-shop
  namespace: elsewhere
  labels: {team: shop, pvnbot.dev/service: not-ours}
spec:
  backoffLimit: 4
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: deploy
        image: example.org/deploy:2
        command: [sh, -c, 'echo "deploying $PVN_SERVICE with $MODE"; exit 3']
        env: [{name: MODE, value: fast}]
`)
	res, err := r.Run(ctx, spec)
	require.NoError(t, err, plane.Log("pvn-nodeagent"))
	assert.Equal(t, 3, res.ExitCode)
	assert.Equal(t, "deploying shop with fast\n", string(res.Stdout))

	jobs := jobsOfRun(t, ctx, DefaultNamespace(rt), spec.RunID)
	require.Len(t, jobs, 1)
	job := jobs[0]
	assert.Regexp(t, `^deploy-shop-[a-z0-9]{5}$`, job.Name)
	assert.Equal(t, int32(0), *job.Spec.BackoffLimit)
	assert.Equal(t, corev1.RestartPolicyNever, job.Spec.Template.Spec.RestartPolicy)
	assert.Equal(t, "shop", job.Labels["team"])
	assert.Equal(t, "shop", job.Labels[LabelService])

	twoObjects := taskSpec(t, rtTwo, runner.ActionApply, "")
	twoObjects.Manifest = append(append([]byte{}, spec.Manifest...), []byte("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n")...)
	_, err = r.Run(ctx, twoObjects)
	require.ErrorContains(t, err, "job manifest holds 2 objects: it must hold exactly one batch/v1 Job")
	_, err = plane.Client.CoreV1().Namespaces().Get(ctx, DefaultNamespace(rtTwo), metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "nothing is created, not even the namespace: %v", err)
	all, err := plane.Client.BatchV1().Jobs("").List(ctx, metav1.ListOptions{LabelSelector: LabelRunID + "=" + LabelValue(twoObjects.RunID)})
	require.NoError(t, err)
	assert.Empty(t, all.Items)
}

// The default namespace is created by the first run and reused after, also
// by a restarted bot; a configured namespace must exist.
func TestRunNamespaces(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	rt, rtMissing, configured := runtimeName("ns-reuse"), runtimeName("ns-missing"), runtimeName("team-shop")
	ns := DefaultNamespace(rt)
	_, err := plane.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err))

	counting := &countingClient{Interface: plane.Client}
	r := New(map[string]kubernetes.Interface{cluster: counting})
	var uid string
	for i := range 3 {
		res, err := r.Run(ctx, taskSpec(t, rt, runner.ActionFetch, "exit 0"))
		require.NoError(t, err)
		require.Equal(t, 0, res.ExitCode)
		got, err := plane.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		require.NoError(t, err)
		if i == 0 {
			uid = string(got.UID)
		}
		assert.Equal(t, uid, string(got.UID), "run %d reuses the namespace", i)
	}
	assert.Equal(t, 1, counting.namespaceCreates())

	restarted := &countingClient{Interface: plane.Client}
	_, err = New(map[string]kubernetes.Interface{cluster: restarted}).Run(ctx, taskSpec(t, rt, runner.ActionFetch, "exit 0"))
	require.NoError(t, err)
	assert.Equal(t, 0, restarted.namespaceCreates())

	missing := taskSpec(t, rtMissing, runner.ActionApply, "exit 0")
	missing.Namespace = configured
	_, err = r.Run(ctx, missing)
	require.EqualError(t, err, "namespace "+configured+" does not exist in Kubernetes runtime test-cluster: "+
		"create it or remove containerOrchestration.k8s.namespace from runtime "+rtMissing)

	_, err = plane.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: configured}}, metav1.CreateOptions{})
	require.NoError(t, err)
	res, err := r.Run(ctx, missing)
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.Len(t, jobsOfRun(t, ctx, configured, missing.RunID), 1)
}

// Six runs at once, with names and run IDs that are not valid label values
// as they are: every Job carries the labels of SPEC §4 and passes the
// apiserver's validation.
func TestRunConcurrentLabels(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	r := newRunner()
	rt := runtimeName("labels")
	specs := make([]runner.Spec, 6)
	for i := range specs {
		specs[i] = taskSpec(t, rt, []runner.Action{runner.ActionApply, runner.ActionFetch, runner.ActionGetInfo}[i%3], fmt.Sprintf("exit %d", i))
		specs[i].Service = fmt.Sprintf("svc-%d", i)
		specs[i].RunID = fmt.Sprintf("demo/svc-%d/staging/%s/run:%d/%0100d", i, specs[i].Action, i, i)
	}
	results := make([]runner.Result, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i := range specs {
		wg.Go(func() { results[i], errs[i] = r.Run(ctx, specs[i]) })
	}
	wg.Wait()

	ns := DefaultNamespace(rt)
	for i, spec := range specs {
		require.NoError(t, errs[i], "run %d", i)
		assert.Equal(t, i, results[i].ExitCode)
		jobs := jobsOfRun(t, ctx, ns, spec.RunID)
		require.Len(t, jobs, 1, "run %d", i)
		job := jobs[0]
		assert.Regexp(t, fmt.Sprintf(`^svc-%d-%s-[a-z0-9]{5}$`, i, map[runner.Action]string{
			runner.ActionApply: "apply", runner.ActionFetch: "fetch", runner.ActionGetInfo: "getinfo"}[spec.Action]), job.Name)
		want := map[string]string{
			LabelManagedBy: "pvnbot", LabelService: spec.Service, LabelApplication: "demo",
			LabelReleaseChannel: "staging", LabelRuntime: rt, LabelAction: string(spec.Action),
			LabelCommit: spec.Commit, LabelRunID: LabelValue(spec.RunID),
		}
		for k, v := range want {
			assert.Equal(t, v, job.Labels[k], "label %s of run %d", k, i)
			assert.Equal(t, v, job.Spec.Template.Labels[k], "pod label %s of run %d", k, i)
		}
		assert.Equal(t, spec.RunID, job.Annotations[AnnotationRunID])
		assert.Equal(t, int32(3600), *job.Spec.TTLSecondsAfterFinished)

		// What the runner builds passes server-side validation as it is.
		built, err := buildJob(spec, time.Hour)
		require.NoError(t, err)
		built.Namespace = ns
		_, err = plane.Client.BatchV1().Jobs(ns).Create(ctx, built, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		require.NoError(t, err, "dry-run create of run %d", i)
	}
}

// An image that cannot be pulled ends the run with that reason, and the Job
// is deleted, well before the start deadline.
func TestRunImagePullFailure(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	r := newRunner(WithClock(newWatchedClock()))
	rt := runtimeName("pull")
	spec := taskSpec(t, rt, runner.ActionApply, "exit 0")
	spec.Image = "registry.example/missing-image:1"
	start := time.Now()
	_, err := r.Run(ctx, spec)
	require.ErrorIs(t, err, ErrNotStarted)
	assert.Contains(t, err.Error(), "ImagePullBackOff")
	assert.Contains(t, err.Error(), "registry.example/missing-image:1")
	t.Logf("image pull failure reported after %s", time.Since(start))
	for _, job := range jobsOfRun(t, ctx, DefaultNamespace(rt), spec.RunID) {
		untilJobGone(t, ctx, job.Namespace, job.Name)
	}
}

// A secret that does not exist stops the container from being created: the
// run ends at once with the reason.
func TestRunMissingSecret(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	r := newRunner(WithClock(newWatchedClock()))
	spec := taskSpec(t, runtimeName("no-secret"), runner.ActionApply, "exit 0")
	spec.Env = append(spec.Env, runner.EnvVar{Name: "TOKEN", SecretRef: &runner.SecretRef{Name: "absent", Key: "token"}})
	_, err := r.Run(ctx, spec)
	require.ErrorIs(t, err, ErrNotStarted)
	assert.Contains(t, err.Error(), "CreateContainerConfigError")
	assert.Contains(t, err.Error(), `"absent" not found`)
}

// A pod the Job controller cannot create (its service account is missing)
// fails the run at the start deadline, with the reason from the Job's events.
func TestRunPodNotCreated(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	clk := newWatchedClock()
	r := newRunner(WithClock(clk))
	rt := runtimeName("no-sa")
	spec := taskSpec(t, rt, runner.ActionApply, "exit 0")
	spec.ServiceAccount = "deployer"

	errc := make(chan error, 1)
	go func() {
		_, err := r.Run(ctx, spec)
		errc <- err
	}()
	clk.waitTimers(t, ctx, 2)
	events := plane.Client.CoreV1().Events(DefaultNamespace(rt))
	w, err := events.Watch(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
	require.NoError(t, err)
	defer w.Stop()
	if list, err := events.List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"}); err != nil || len(list.Items) == 0 {
		_, err = watchtools.UntilWithoutRetry(ctx, w, func(e watch.Event) (bool, error) { return true, nil })
		require.NoError(t, err)
	}
	clk.Advance(DefaultStartDeadline)
	err = <-errc
	require.ErrorIs(t, err, ErrNotStarted)
	assert.Contains(t, err.Error(), "FailedCreate")
	assert.Contains(t, err.Error(), `serviceaccount "deployer" not found`)
}

// A pod that cannot be scheduled fails the run at the start deadline, with
// the scheduler's reason.
func TestRunUnschedulable(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	clk := newWatchedClock()
	r := newRunner(WithClock(clk), WithStartDeadline(2*time.Minute))
	rt := runtimeName("unschedulable")
	spec := taskSpec(t, rt, runner.ActionApply, "")
	spec.Image, spec.Entrypoint, spec.Cmd = "", nil, nil
	spec.Manifest = []byte(`{"apiVersion":"batch/v1","kind":"Job","spec":{"template":{"spec":{
		"nodeSelector":{"pvnbot.dev/nowhere":"true"},
		"containers":[{"name":"job","image":"example.org/x","command":["true"]}]}}}}`)

	errc := make(chan error, 1)
	go func() {
		_, err := r.Run(ctx, spec)
		errc <- err
	}()
	clk.waitTimers(t, ctx, 2)
	untilPod(t, ctx, DefaultNamespace(rt), spec.RunID, func(p *corev1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonUnschedulable {
				return true
			}
		}
		return false
	})
	clk.Advance(2 * time.Minute)
	err := <-errc
	require.ErrorIs(t, err, ErrNotStarted)
	assert.Contains(t, err.Error(), "within 2m0s")
	assert.Contains(t, err.Error(), "node affinity/selector")
}

// Cancelling the caller deletes the Job (and its pod, foreground); a run
// past its timeout too.
func TestRunCancelAndTimeout(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	for name, stop := range map[string]func(clk *watchedClock, cancel context.CancelCauseFunc){
		"cancelled": func(_ *watchedClock, cancel context.CancelCauseFunc) { cancel(errors.New("target deleted")) },
		"timed out": func(clk *watchedClock, _ context.CancelCauseFunc) { clk.Advance(10 * time.Minute) },
	} {
		t.Run(name, func(t *testing.T) {
			clk := newWatchedClock()
			r := newRunner(WithClock(clk), WithStartDeadline(time.Hour))
			rt := runtimeName("cancel")
			spec := taskSpec(t, rt, runner.ActionApply, "sleep 300")
			spec.Timeout = 10 * time.Minute
			runCtx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			errc := make(chan error, 1)
			go func() {
				_, err := r.Run(runCtx, spec)
				errc <- err
			}()
			clk.waitTimers(t, ctx, 2)
			pod := untilPod(t, ctx, DefaultNamespace(rt), spec.RunID, kubetest.PodRunning)
			stop(clk, cancel)
			err := <-errc
			require.Error(t, err)
			if name == "timed out" {
				require.ErrorIs(t, err, ErrTimeout)
				require.ErrorIs(t, err, context.DeadlineExceeded)
			} else {
				require.ErrorContains(t, err, "target deleted")
			}
			untilJobGone(t, ctx, pod.Namespace, pod.Labels[batchv1.JobNameLabel])
			_, err = plane.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "the pod went first: %v", err)
		})
	}
}

// A bot stopped mid-Job leaves the Job running; restarted, it awaits the same
// Job rather than creating another.
func TestRunRestartAwaitsSameJob(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	gate := filepath.Join(t.TempDir(), "gate")
	require.NoError(t, syscall.Mkfifo(gate, 0o600))
	rt := runtimeName("restart")
	spec := taskSpec(t, rt, runner.ActionApply, `read line < "$GATE"; echo "released: $line"; exit 3`)
	spec.Env = append(spec.Env, runner.EnvVar{Name: "GATE", Value: gate})

	first := newRunner()
	runCtx, stopBot := context.WithCancelCause(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := first.Run(runCtx, spec)
		errc <- err
	}()
	pod := untilPod(t, ctx, DefaultNamespace(rt), spec.RunID, kubetest.PodRunning)
	stopBot(ErrDetached)
	require.ErrorIs(t, <-errc, ErrDetached)

	restarted := newRunner()
	resc := make(chan runner.Result, 1)
	go func() {
		res, err := restarted.Run(ctx, spec)
		assert.NoError(t, err)
		resc <- res
	}()
	f, err := os.OpenFile(gate, os.O_WRONLY, 0) // blocks until the job reads
	require.NoError(t, err)
	_, err = f.WriteString("go\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	res := <-resc
	assert.Equal(t, 3, res.ExitCode)
	assert.Equal(t, "released: go\n", string(res.Stdout))
	jobs := jobsOfRun(t, ctx, pod.Namespace, spec.RunID)
	require.Len(t, jobs, 1)
	assert.Equal(t, pod.Labels[batchv1.JobNameLabel], jobs[0].Name)
}

func TestRunUnknownProxyRuntime(t *testing.T) {
	spec := taskSpec(t, "x", runner.ActionApply, "exit 0")
	spec.ProxyRuntime = "prod-cluster"
	_, err := newRunner().Run(t.Context(), spec)
	require.EqualError(t, err, `proxy runtime "prod-cluster" is not a linked Kubernetes runtime (linked: test-cluster)`)
}

func TestNewClients(t *testing.T) {
	clients, err := NewClients([]Cluster{{Name: cluster, Kubeconfig: plane.Kubeconfig, Context: "kubetest"}})
	require.NoError(t, err)
	res, err := New(clients).Run(ctxFor(t, time.Minute), taskSpec(t, runtimeName("kubeconfig"), runner.ActionFetch, "exit 2"))
	require.NoError(t, err)
	assert.Equal(t, 2, res.ExitCode)

	_, err = NewClients([]Cluster{{Name: "prod", Kubeconfig: plane.Kubeconfig, Context: "nope"}})
	require.ErrorContains(t, err, `kubernetes runtime prod: load kubeconfig`)
	require.ErrorContains(t, err, `"nope"`)
}
