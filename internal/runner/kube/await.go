package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/wrapper"
)

// maxLogBytes bounds what is read of a pod's log: pvn-wrapper's line holds
// up to 4 MiB of each stream, base64-encoded.
const maxLogBytes = 64 << 20

// deleteTimeout bounds the deletion of a Job after its run was cancelled.
const deleteTimeout = 30 * time.Second

// Waiting reasons after which a container will not start without a change
// to the cluster: the run fails at once, with the reason.
var fatalWaiting = map[string]bool{
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
}

// waiter follows one Job until its pod's main container terminates.
type waiter struct {
	r       *Runner
	client  kubernetes.Interface
	job     *batchv1.Job
	timeout time.Duration

	started bool   // the main container ran
	pending string // why the pod is not running yet, as last seen
}

func (w *waiter) await(ctx context.Context) (runner.Result, error) {
	ns, name := w.job.Namespace, w.job.Name
	jobs := w.client.BatchV1().Jobs(ns)
	pods := w.client.CoreV1().Pods(ns)
	jobSel := fields.OneTermEqualSelector("metadata.name", name).String()
	podSel := batchv1.ControllerUidLabel + "=" + string(w.job.UID)

	_, _, jobWatch, _ := watchtools.NewIndexerInformerWatcher(selected(jobs.List, jobs.Watch, metav1.ListOptions{FieldSelector: jobSel}), &batchv1.Job{})
	defer jobWatch.Stop()
	_, _, podWatch, _ := watchtools.NewIndexerInformerWatcher(selected(pods.List, pods.Watch, metav1.ListOptions{LabelSelector: podSel}), &corev1.Pod{})
	defer podWatch.Stop()

	timedOut := make(chan struct{})
	timeoutTimer := w.r.clock.AfterFunc(w.timeout, func() { close(timedOut) })
	defer timeoutTimer.Stop()
	startMissed := make(chan struct{})
	startTimer := w.r.clock.AfterFunc(w.r.startDeadline, func() { close(startMissed) })
	defer startTimer.Stop()

	for {
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), ErrDetached) {
				return runner.Result{}, fmt.Errorf("job %s/%s: %w", ns, name, ErrDetached)
			}
			w.delete(ctx)
			return runner.Result{}, fmt.Errorf("job %s/%s deleted: run cancelled: %w", ns, name, context.Cause(ctx))
		case <-timedOut:
			w.delete(ctx)
			return runner.Result{}, fmt.Errorf("job %s/%s deleted after %s: %w: %w", ns, name, w.timeout, ErrTimeout, context.DeadlineExceeded)
		case <-startMissed:
			startMissed = nil
			if !w.started {
				reason := w.whyPending(ctx)
				w.delete(ctx)
				return runner.Result{}, fmt.Errorf("job %s/%s deleted: %w within %s: %s", ns, name, ErrNotStarted, w.r.startDeadline, reason)
			}
		case e, ok := <-jobWatch.ResultChan():
			if !ok {
				return runner.Result{}, fmt.Errorf("job %s/%s: watch closed", ns, name)
			}
			if res, done, err := w.onJob(ctx, e); done {
				return res, err
			}
		case e, ok := <-podWatch.ResultChan():
			if !ok {
				return runner.Result{}, fmt.Errorf("job %s/%s: watch on its pods closed", ns, name)
			}
			pod, isPod := e.Object.(*corev1.Pod)
			if !isPod || e.Type == watch.Deleted {
				continue
			}
			if res, done, err := w.onPod(ctx, pod); done {
				return res, err
			}
			if w.started {
				startTimer.Stop()
			}
		}
	}
}

// onPod looks at a pod of the Job: done when its main container terminated
// or it cannot start.
func (w *waiter) onPod(ctx context.Context, pod *corev1.Pod) (runner.Result, bool, error) {
	container := mainContainer(pod.Spec)
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name != container {
			continue
		}
		switch {
		case s.State.Terminated != nil:
			res := w.result(ctx, pod, container, s.State.Terminated)
			return res, true, nil
		case s.State.Running != nil:
			w.started = true
		case s.State.Waiting != nil && s.State.Waiting.Reason != "":
			w.pending = s.State.Waiting.Reason + ": " + s.State.Waiting.Message
			if fatalWaiting[s.State.Waiting.Reason] {
				w.delete(ctx)
				return runner.Result{}, true, fmt.Errorf("job %s/%s deleted: %w: pod %s: %s", w.job.Namespace, w.job.Name, ErrNotStarted, pod.Name, w.pending)
			}
		}
	}
	if pod.Status.Phase == corev1.PodFailed {
		return runner.Result{}, true, fmt.Errorf("job %s/%s: pod %s failed before its container ended: %s: %s",
			w.job.Namespace, w.job.Name, pod.Name, pod.Status.Reason, pod.Status.Message)
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			w.pending = c.Reason + ": " + c.Message
		}
	}
	return runner.Result{}, false, nil
}

// onJob looks at the Job: done when it was deleted, or failed or completed
// and its pod tells how.
func (w *waiter) onJob(ctx context.Context, e watch.Event) (runner.Result, bool, error) {
	ns, name := w.job.Namespace, w.job.Name
	if e.Type == watch.Deleted {
		return runner.Result{}, true, fmt.Errorf("job %s/%s was deleted before its pod ended", ns, name)
	}
	job, ok := e.Object.(*batchv1.Job)
	if !ok {
		return runner.Result{}, false, nil
	}
	finished := findCondition(job, batchv1.JobComplete)
	if finished == nil {
		finished = findCondition(job, batchv1.JobFailed)
	}
	if finished == nil {
		return runner.Result{}, false, nil
	}
	// The Job controller decides from the pod's status, so a read now shows
	// the pod's terminated container, unless the pod is gone.
	list, err := w.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.ControllerUidLabel + "=" + string(job.UID)})
	if err != nil {
		return runner.Result{}, true, fmt.Errorf("job %s/%s finished (%s): list its pods: %w", ns, name, finished.Type, err)
	}
	sort.Slice(list.Items, func(i, j int) bool {
		return list.Items[i].CreationTimestamp.Before(&list.Items[j].CreationTimestamp)
	})
	for i := range list.Items {
		if res, done, err := w.onPod(ctx, &list.Items[i]); done {
			return res, true, err
		}
	}
	return runner.Result{}, true, fmt.Errorf("job %s/%s %s without a pod that ended: %s: %s", ns, name, finished.Type, finished.Reason, finished.Message)
}

func findCondition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i, c := range job.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return &job.Status.Conditions[i]
		}
	}
	return nil
}

// result reads the pod's log: pvn-wrapper's line when there is one (its exit
// code is the program's real one, which --success-exit-codes may have hidden
// from Kubernetes), else the whole log is stdout and the exit code is the
// container's.
func (w *waiter) result(ctx context.Context, pod *corev1.Pod, container string, term *corev1.ContainerStateTerminated) runner.Result {
	res := runner.Result{ExitCode: int(term.ExitCode), Started: term.StartedAt.Time, Finished: term.FinishedAt.Time}
	if term.Reason == "StartError" || term.Reason == "ContainerCannotRun" {
		res.ExecError = term.Reason + ": " + term.Message
	}
	log, err := w.readLog(ctx, pod.Name, container)
	if err != nil {
		res.Stderr = fmt.Appendf(nil, "pvnbot: could not read the log of pod %s: %v\n", pod.Name, err)
		return res
	}
	if out, ok := wrapper.Parse(log); ok {
		res.ExitCode, res.Stdout, res.Stderr, res.ExecError = out.ExitCode, out.Stdout, out.Stderr, out.ExecError
		if out.StartTimestampNs > 0 {
			res.Started = time.Unix(0, out.StartTimestampNs)
			res.Finished = res.Started.Add(time.Duration(out.DurationNs))
		}
	} else {
		res.Stdout = log
	}
	res.Stdout = lastBytes(res.Stdout, w.r.outputLimit)
	res.Stderr = lastBytes(res.Stderr, w.r.outputLimit)
	return res
}

func (w *waiter) readLog(ctx context.Context, pod, container string) ([]byte, error) {
	stream, err := w.client.CoreV1().Pods(w.job.Namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container}).Stream(ctx)
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	return io.ReadAll(io.LimitReader(stream, maxLogBytes))
}

func lastBytes(b []byte, n int) []byte {
	if n > 0 && len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// whyPending says why the Job's pod is not running: what its status said
// last, else the Job's and its pods' latest warning events.
func (w *waiter) whyPending(ctx context.Context) string {
	if w.pending != "" {
		return w.pending
	}
	events, err := w.client.CoreV1().Events(w.job.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Sprintf("no pod running (events unavailable: %v)", err)
	}
	var latest *corev1.Event
	for i := range events.Items {
		e := &events.Items[i]
		if e.Type != corev1.EventTypeWarning || !w.concerns(e.InvolvedObject) {
			continue
		}
		if latest == nil || eventTime(e).After(eventTime(latest)) {
			latest = e
		}
	}
	if latest == nil {
		return "no pod running and no warning event"
	}
	return latest.Reason + ": " + latest.Message
}

// concerns tells whether an event is about the Job or one of its pods, which
// the Job controller names "<job>-<suffix>".
func (w *waiter) concerns(ref corev1.ObjectReference) bool {
	return ref.UID == w.job.UID || ref.Kind == "Pod" && strings.HasPrefix(ref.Name, w.job.Name+"-")
}

func eventTime(e *corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// delete deletes the Job and, first, its pods (foreground propagation). It
// runs after ctx may have ended, so it has a context of its own.
func (w *waiter) delete(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
	defer cancel()
	policy := metav1.DeletePropagationForeground
	err := w.client.BatchV1().Jobs(w.job.Namespace).Delete(ctx, w.job.Name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) {
		w.r.log.ErrorContext(ctx, "delete job", "namespace", w.job.Namespace, "job", w.job.Name, "err", err)
		return
	}
	w.r.log.InfoContext(ctx, "job deleted", "namespace", w.job.Namespace, "job", w.job.Name)
}

// selected lists and watches through list and watchFn only the objects
// that sel's label and field selectors match.
func selected[L runtime.Object](list func(context.Context, metav1.ListOptions) (L, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error), sel metav1.ListOptions) *cache.ListWatch {
	restrict := func(o metav1.ListOptions) metav1.ListOptions {
		o.LabelSelector, o.FieldSelector = sel.LabelSelector, sel.FieldSelector
		return o
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return list(ctx, restrict(o))
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return watchFn(ctx, restrict(o))
		},
	}
}
