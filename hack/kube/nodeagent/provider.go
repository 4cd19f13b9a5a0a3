package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// imageBackOffAfter is how long a missing image stays in ErrImagePull before
// it is reported as ImagePullBackOff, as the kubelet does.
const imageBackOffAfter = 2 * time.Second

// provider runs every container of a pod as a local process.
type provider struct {
	log     *slog.Logger
	path    string
	workDir string
	marker  string

	// lister holds the pods as the apiserver last showed them.
	lister corev1listers.PodLister
	client kubernetes.Interface
	env    *envResolver

	mu      sync.Mutex
	pods    map[string]*podRun
	changed chan string // keys of pods whose status changed, in order
}

type podRun struct {
	pod        *corev1.Pod // with the status as last computed
	dir        string
	containers map[string]*containerRun
	deleting   bool
}

type containerRun struct {
	logPath string
	process *os.Process
	done    chan struct{} // closed when the process ended or never started
}

func newLocalProvider(log *slog.Logger, client kubernetes.Interface, cfg nodeutil.ProviderConfig, path, workDir, marker string) *provider {
	return &provider{
		log:     log,
		client:  client,
		lister:  cfg.Pods,
		env:     &envResolver{client: client, secrets: cfg.Secrets, configMaps: cfg.ConfigMaps},
		path:    path,
		workDir: workDir,
		marker:  marker,
		pods:    map[string]*podRun{},
		changed: make(chan string, 4096),
	}
}

func podKey(namespace, name string) string { return namespace + "/" + name }

// NotifyPods sends the current status of a pod to f each time it changes.
// The pod's metadata is the apiserver's latest: virtual-kubelet writes the
// status with it, and the Job controller removes its finalizer from pods
// being deleted, which an older copy would try to add back.
func (p *provider) NotifyPods(ctx context.Context, f func(*corev1.Pod)) {
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case key := <-p.changed:
				p.mu.Lock()
				run, ok := p.pods[key]
				var pod *corev1.Pod
				if ok {
					pod = run.pod.DeepCopy()
				}
				gone := ok && run.deleting && allDone(run)
				if gone {
					delete(p.pods, key)
				}
				p.mu.Unlock()
				if pod == nil {
					continue
				}
				if cur, err := p.lister.Pods(pod.Namespace).Get(pod.Name); err == nil && cur.UID == pod.UID {
					pod.ObjectMeta = *cur.ObjectMeta.DeepCopy()
				}
				f(pod)
				if gone {
					p.removeFromAPI(ctx, pod)
				}
			}
		}
	}()
}

// removeFromAPI deletes a pod whose processes all ended after it was marked
// for deletion, as the kubelet does; virtual-kubelet alone would wait for the
// whole grace period.
func (p *provider) removeFromAPI(ctx context.Context, pod *corev1.Pod) {
	zero := int64(0)
	err := p.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		p.log.Warn("delete pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

func allDone(run *podRun) bool {
	for _, c := range run.containers {
		select {
		case <-c.done:
		default:
			return false
		}
	}
	return true
}

// CreatePod starts the pod's containers.
func (p *provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	envs := make([][]string, len(pod.Spec.Containers))
	envErrs := make([]error, len(pod.Spec.Containers))
	for i, c := range pod.Spec.Containers {
		envs[i], envErrs[i] = p.env.resolve(ctx, pod, c)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pods[key]; ok {
		return nil
	}
	dir := filepath.Join(p.workDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create pod dir: %w", err)
	}
	pod = pod.DeepCopy()
	now := metav1.Now()
	pod.Status = corev1.PodStatus{
		Phase:     corev1.PodPending,
		HostIP:    "127.0.0.1",
		HostIPs:   []corev1.HostIP{{IP: "127.0.0.1"}},
		PodIP:     "127.0.0.1",
		PodIPs:    []corev1.PodIP{{IP: "127.0.0.1"}},
		StartTime: &now,
		QOSClass:  corev1.PodQOSBestEffort,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	run := &podRun{pod: pod, dir: dir, containers: map[string]*containerRun{}}
	p.pods[key] = run
	for i, c := range pod.Spec.Containers {
		status := p.startContainer(key, run, c, envs[i], envErrs[i])
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, status)
	}
	updatePhase(pod)
	p.changed <- key
	p.log.Info("pod created", "pod", key, "phase", pod.Status.Phase)
	return nil
}

// startContainer starts one container (with p.mu held) and returns its first
// status. A container whose environment could not be resolved waits, as with
// the kubelet, with reason CreateContainerConfigError.
func (p *provider) startContainer(key string, run *podRun, c corev1.Container, env []string, envErr error) corev1.ContainerStatus {
	cr := &containerRun{logPath: filepath.Join(run.dir, c.Name+".log"), done: make(chan struct{})}
	run.containers[c.Name] = cr
	status := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image}
	now := metav1.Now()

	if p.marker != "" && strings.Contains(c.Image, p.marker) {
		close(cr.done)
		status.State.Waiting = &corev1.ContainerStateWaiting{
			Reason:  "ErrImagePull",
			Message: fmt.Sprintf("failed to pull image %q: not found (pvn-nodeagent: image name contains %q)", c.Image, p.marker),
		}
		time.AfterFunc(imageBackOffAfter, func() { p.imageBackOff(key, c.Name) })
		return status
	}

	if envErr != nil {
		close(cr.done)
		status.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: envErr.Error()}
		return status
	}

	terminated := func(msg string) corev1.ContainerStatus {
		close(cr.done)
		_ = os.WriteFile(cr.logPath, nil, 0o644)
		status.State.Terminated = &corev1.ContainerStateTerminated{
			ExitCode: 128, Reason: "StartError", Message: msg, StartedAt: now, FinishedAt: now,
		}
		return status
	}

	argv := append(append([]string{}, c.Command...), c.Args...)
	if len(argv) == 0 {
		return terminated("no command: pvn-nodeagent runs no image entrypoints, give the container a command")
	}
	bin, err := lookPath(p.path, argv[0])
	if err != nil {
		return terminated(err.Error())
	}
	logFile, err := os.Create(cr.logPath)
	if err != nil {
		return terminated(fmt.Sprintf("create log file: %v", err))
	}
	cmd := exec.Command(bin, argv[1:]...)
	cmd.Path = bin
	cmd.Dir = run.dir
	if c.WorkingDir != "" {
		if fi, err := os.Stat(c.WorkingDir); err == nil && fi.IsDir() {
			cmd.Dir = c.WorkingDir
		}
	}
	cmd.Env = []string{"PATH=" + p.path, "HOME=" + run.dir, "TMPDIR=" + run.dir, "HOSTNAME=" + run.pod.Name}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return terminated(err.Error())
	}
	cr.process = cmd.Process
	status.Started = new(true)
	status.ContainerID = fmt.Sprintf("pvn://%d", cmd.Process.Pid)
	status.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
	go p.await(key, c.Name, cmd, logFile, now)
	return status
}

func (p *provider) await(key, container string, cmd *exec.Cmd, logFile *os.File, started metav1.Time) {
	err := cmd.Wait()
	logFile.Close()
	code := 0
	if err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			code = 128
		} else if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		} else {
			code = exitErr.ExitCode()
		}
	}
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	run, ok := p.pods[key]
	if !ok {
		return
	}
	close(run.containers[container].done)
	setContainerState(run.pod, container, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: int32(code), Reason: reason, StartedAt: started, FinishedAt: metav1.Now(),
	}})
	updatePhase(run.pod)
	p.log.Info("container exited", "pod", key, "container", container, "exitCode", code)
	p.changed <- key
}

func (p *provider) imageBackOff(key, container string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	run, ok := p.pods[key]
	if !ok || run.deleting {
		return
	}
	for i, s := range run.pod.Status.ContainerStatuses {
		if s.Name == container && s.State.Waiting != nil && s.State.Waiting.Reason == "ErrImagePull" {
			run.pod.Status.ContainerStatuses[i].State.Waiting = &corev1.ContainerStateWaiting{
				Reason:  "ImagePullBackOff",
				Message: fmt.Sprintf("Back-off pulling image %q: %s", s.Image, s.State.Waiting.Message),
			}
		}
	}
	p.changed <- key
}

func setContainerState(pod *corev1.Pod, container string, state corev1.ContainerState) {
	for i, s := range pod.Status.ContainerStatuses {
		if s.Name == container {
			if state.Terminated != nil && s.State.Running != nil {
				state.Terminated.StartedAt = s.State.Running.StartedAt
			}
			pod.Status.ContainerStatuses[i].State = state
			pod.Status.ContainerStatuses[i].Ready = false
			pod.Status.ContainerStatuses[i].Started = new(false)
		}
	}
}

// updatePhase derives the pod's phase and conditions from its containers,
// as the kubelet does for restartPolicy Never.
func updatePhase(pod *corev1.Pod) {
	waiting, running, failed := 0, 0, 0
	for _, s := range pod.Status.ContainerStatuses {
		switch {
		case s.State.Waiting != nil:
			waiting++
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil && s.State.Terminated.ExitCode != 0:
			failed++
		}
	}
	switch {
	case waiting > 0:
		pod.Status.Phase = corev1.PodPending
	case running > 0:
		pod.Status.Phase = corev1.PodRunning
	case failed > 0:
		pod.Status.Phase = corev1.PodFailed
	default:
		pod.Status.Phase = corev1.PodSucceeded
	}
	ready := corev1.ConditionFalse
	if running > 0 && waiting == 0 && running == len(pod.Status.ContainerStatuses) {
		ready = corev1.ConditionTrue
	}
	now := metav1.Now()
	conds := pod.Status.Conditions[:0]
	for _, c := range pod.Status.Conditions {
		if c.Type != corev1.PodReady && c.Type != corev1.ContainersReady {
			conds = append(conds, c)
		}
	}
	pod.Status.Conditions = append(conds,
		corev1.PodCondition{Type: corev1.ContainersReady, Status: ready, LastTransitionTime: now},
		corev1.PodCondition{Type: corev1.PodReady, Status: ready, LastTransitionTime: now},
	)
}

// UpdatePod changes nothing: a running process cannot be changed.
func (p *provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error { return nil }

// DeletePod stops the pod's processes: SIGTERM, then SIGKILL after the grace period.
func (p *provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	p.mu.Lock()
	defer p.mu.Unlock()
	run, ok := p.pods[key]
	if !ok {
		return errdefs.NotFoundf("pod %s not found", key)
	}
	run.deleting = true
	run.pod.ObjectMeta = *pod.ObjectMeta.DeepCopy()
	grace := 2 * time.Second
	if pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds < 2 {
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	}
	now := metav1.Now()
	for name, c := range run.containers {
		select {
		case <-c.done:
			for i, s := range run.pod.Status.ContainerStatuses {
				if s.Name == name && s.State.Waiting != nil {
					run.pod.Status.ContainerStatuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
						ExitCode: 137, Reason: "ContainerStatusUnknown", Message: "deleted before it started", StartedAt: now, FinishedAt: now,
					}}
				}
			}
		default:
			pgid := c.process.Pid
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			time.AfterFunc(grace, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
		}
	}
	updatePhase(run.pod)
	p.changed <- key
	return nil
}

// GetPod returns the pod as last seen, with its status.
func (p *provider) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	run, ok := p.pods[podKey(namespace, name)]
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s not found", namespace, name)
	}
	return run.pod.DeepCopy(), nil
}

// GetPodStatus returns the pod's status.
func (p *provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

// GetPods returns every pod the provider knows.
func (p *provider) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pods := make([]*corev1.Pod, 0, len(p.pods))
	for _, run := range p.pods {
		pods = append(pods, run.pod.DeepCopy())
	}
	return pods, nil
}

// GetContainerLogs returns the combined stdout and stderr of a container.
func (p *provider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	p.mu.Lock()
	run, ok := p.pods[podKey(namespace, podName)]
	var c *containerRun
	if ok {
		c = run.containers[containerName]
	}
	p.mu.Unlock()
	if c == nil {
		return nil, errdefs.NotFoundf("container %s of pod %s/%s not found", containerName, namespace, podName)
	}
	data, err := os.ReadFile(c.logPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read log: %w", err)
	}
	if !opts.Follow {
		return io.NopCloser(strings.NewReader(limitLog(string(data), opts))), nil
	}
	return newFollower(c.logPath, c.done)
}

func limitLog(data string, opts api.ContainerLogOpts) string {
	if opts.Tail > 0 {
		lines := strings.SplitAfter(data, "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		if len(lines) > opts.Tail {
			data = strings.Join(lines[len(lines)-opts.Tail:], "")
		}
	}
	if opts.LimitBytes > 0 && len(data) > opts.LimitBytes {
		data = data[:opts.LimitBytes]
	}
	return data
}

// follower reads a log file until its container has ended.
type follower struct {
	f    *os.File
	done <-chan struct{}
}

func newFollower(path string, done <-chan struct{}) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return &follower{f: f, done: done}, nil
}

func (r *follower) Read(b []byte) (int, error) {
	for {
		n, err := r.f.Read(b)
		if n > 0 || !errors.Is(err, io.EOF) {
			return n, err
		}
		select {
		case <-r.done:
			n, err := r.f.Read(b)
			if n > 0 {
				return n, nil
			}
			return 0, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *follower) Close() error { return r.f.Close() }

func (p *provider) killAll() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, run := range p.pods {
		for _, c := range run.containers {
			if c.process != nil {
				_ = syscall.Kill(-c.process.Pid, syscall.SIGKILL)
			}
		}
	}
}

func lookPath(path, name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		candidate := filepath.Join(dir, name)
		if fi, err := os.Stat(candidate); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH (%s)", name, path)
}

// RunInContainer is not supported.
func (p *provider) RunInContainer(ctx context.Context, namespace, podName, containerName string, cmd []string, attach api.AttachIO) error {
	return errdefs.InvalidInput("exec is not supported by pvn-nodeagent")
}

// AttachToContainer is not supported.
func (p *provider) AttachToContainer(ctx context.Context, namespace, podName, containerName string, attach api.AttachIO) error {
	return errdefs.InvalidInput("attach is not supported by pvn-nodeagent")
}

// GetStatsSummary reports no usage.
func (p *provider) GetStatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return &statsv1alpha1.Summary{}, nil
}

// GetMetricsResource reports no metrics.
func (p *provider) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, nil
}

// PortForward is not supported.
func (p *provider) PortForward(ctx context.Context, namespace, pod string, port int32, stream io.ReadWriteCloser) error {
	return errdefs.InvalidInput("port-forward is not supported by pvn-nodeagent")
}
