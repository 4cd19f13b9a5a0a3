package kube

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"

	"github.com/pvnbot/pvnbot/internal/runner"
)

// Labels set on every Job and its pods.
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	LabelService        = "pvnbot.dev/service"
	LabelApplication    = "pvnbot.dev/application"
	LabelReleaseChannel = "pvnbot.dev/release-channel"
	LabelRuntime        = "pvnbot.dev/runtime"
	LabelAction         = "pvnbot.dev/action"
	LabelCommit         = "pvnbot.dev/commit"
	LabelRunID          = "pvnbot.dev/run-id"

	// AnnotationRunID holds the run ID in full when it is not a valid label value.
	AnnotationRunID = "pvnbot.dev/run-id"
	// AnnotationDesiredVersion holds the desired version (applyId or commit).
	AnnotationDesiredVersion = "pvnbot.dev/desired-version"
)

// activeDeadlineMargin is how much longer than the run's timeout the cluster
// lets a Job run.
const activeDeadlineMargin = time.Minute

// ContainerName is the name of the container of a taskConfig Job.
const ContainerName = "job"

var metav1CreateOptions = metav1.CreateOptions{FieldManager: "pvnbot"}

// Labels returns the labels of a run's Job and pods.
func Labels(spec runner.Spec) map[string]string {
	l := map[string]string{
		LabelManagedBy:      "pvnbot",
		LabelService:        LabelValue(spec.Service),
		LabelApplication:    LabelValue(spec.Application),
		LabelReleaseChannel: LabelValue(spec.ReleaseChannel),
		LabelRuntime:        LabelValue(spec.Runtime),
		LabelAction:         LabelValue(string(spec.Action)),
		LabelCommit:         LabelValue(spec.Commit),
	}
	if spec.RunID != "" {
		l[LabelRunID] = LabelValue(spec.RunID)
	}
	return l
}

// LabelValue returns s when it is a valid label value, else a valid value
// made from it: invalid characters replaced, cut to length, and suffixed with a
// digest of s so that distinct values stay distinct.
func LabelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	clean := []byte(s)
	for i, c := range clean {
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			clean[i] = '-'
		}
	}
	const keep = validation.LabelValueMaxLength - 11
	if len(clean) > keep {
		clean = clean[:keep]
	}
	sum := sha256.Sum256([]byte(s))
	digest := hex.EncodeToString(sum[:])[:10]
	if out := strings.Trim(string(clean), "-_."); out != "" {
		return out + "-" + digest
	}
	return digest
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// dnsLabel lowercases s and keeps it a DNS label of at most max characters.
func dnsLabel(s string, max int) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	out := strings.Trim(string(b), "-")
	if len(out) > max {
		sum := sha256.Sum256([]byte(s))
		out = strings.TrimRight(out[:max-7], "-") + "-" + hex.EncodeToString(sum[:])[:6]
	}
	if out == "" {
		out = "job"
	}
	return out
}

// GenerateName is the generateName of a run's Job: "<service>-<action>-",
// lowercased and short enough for the random suffix.
func GenerateName(spec runner.Spec) string {
	return dnsLabel(spec.Service+"-"+string(spec.Action), 52) + "-"
}

// DefaultNamespace is the namespace of a runtime's Jobs when none is configured.
func DefaultNamespace(runtime string) string {
	return dnsLabel("pvn-proxy-runtime-"+runtime, validation.DNS1123LabelMaxLength)
}

// buildJob makes the Job of spec, in no namespace yet.
func buildJob(spec runner.Spec, timeout time.Duration) (*batchv1.Job, error) {
	var job *batchv1.Job
	if len(spec.Manifest) > 0 {
		var err error
		if job, err = decodeManifest(spec.Manifest); err != nil {
			return nil, err
		}
	} else {
		if spec.Image == "" {
			return nil, fmt.Errorf("runtime %s, %s: no image to run", spec.Runtime, spec.Action)
		}
		c := corev1.Container{Name: ContainerName, Image: spec.Image, Command: spec.Entrypoint, Args: spec.Cmd}
		if path.IsAbs(spec.WorkingDirectory) {
			c.WorkingDir = spec.WorkingDirectory
		}
		job = &batchv1.Job{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers:         []corev1.Container{c},
			ServiceAccountName: spec.ServiceAccount,
		}}}}
	}

	prefix := GenerateName(spec)
	if job.Name != "" {
		prefix = dnsLabel(job.Name, 52) + "-"
	}
	job.Name, job.GenerateName = "", prefix
	job.Namespace = ""
	job.Labels = merge(job.Labels, Labels(spec))
	job.Annotations = merge(job.Annotations, map[string]string{AnnotationDesiredVersion: spec.DesiredVersion})
	if spec.RunID != "" {
		job.Annotations[AnnotationRunID] = spec.RunID
	}
	tmpl := &job.Spec.Template
	tmpl.Labels = merge(tmpl.Labels, Labels(spec))
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	job.Spec.BackoffLimit = new(int32(0))
	if job.Spec.TTLSecondsAfterFinished == nil {
		ttl := spec.TTL
		if ttl <= 0 {
			ttl = DefaultTTL
		}
		job.Spec.TTLSecondsAfterFinished = new(int32(ttl / time.Second))
	}
	if job.Spec.ActiveDeadlineSeconds == nil {
		// A backstop for a Job the bot stopped awaiting; the runner's own
		// timeout comes first and says so.
		job.Spec.ActiveDeadlineSeconds = new(int64((timeout + activeDeadlineMargin + time.Second - 1) / time.Second))
	}
	env := envVars(spec.Env)
	for i := range tmpl.Spec.Containers {
		c := &tmpl.Spec.Containers[i]
		for _, e := range env {
			if !hasEnv(c.Env, e.Name) {
				c.Env = append(c.Env, e)
			}
		}
	}
	return job, nil
}

func merge(dst, src map[string]string) map[string]string {
	if dst == nil {
		dst = map[string]string{}
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

func envVars(vars []runner.EnvVar) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(vars))
	for _, v := range vars {
		e := corev1.EnvVar{Name: v.Name, Value: v.Value}
		if v.SecretRef != nil {
			e.Value = ""
			e.ValueFrom = &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: v.SecretRef.Name},
				Key:                  v.SecretRef.Key,
			}}
		}
		out = append(out, e)
	}
	return out
}

func hasEnv(env []corev1.EnvVar, name string) bool {
	for _, e := range env {
		if e.Name == name {
			return true
		}
	}
	return false
}

// decodeManifest reads a kubernetesConfig job file: exactly one batch/v1 Job,
// no unknown fields.
func decodeManifest(data []byte) (*batchv1.Job, error) {
	dec := yamlutil.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var docs [][]byte
	for {
		var raw runtime.RawExtension
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("job manifest: %w", err)
		}
		if doc := bytes.TrimSpace(raw.Raw); len(doc) > 0 && string(doc) != "null" {
			docs = append(docs, doc)
		}
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("job manifest holds %d objects: it must hold exactly one batch/v1 Job", len(docs))
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(docs[0], &tm); err != nil {
		return nil, fmt.Errorf("job manifest: %w", err)
	}
	if tm.APIVersion != "batch/v1" || tm.Kind != "Job" {
		return nil, fmt.Errorf("job manifest holds a %q of apiVersion %q: it must hold one batch/v1 Job", tm.Kind, tm.APIVersion)
	}
	job := &batchv1.Job{}
	d := json.NewDecoder(bytes.NewReader(docs[0]))
	d.DisallowUnknownFields()
	if err := d.Decode(job); err != nil {
		return nil, fmt.Errorf("job manifest: batch/v1 Job: %w", err)
	}
	if len(job.Spec.Template.Spec.Containers) == 0 {
		return nil, fmt.Errorf("job manifest: the Job has no containers")
	}
	return job, nil
}

// findJob returns the Job of an earlier Run with the same run ID that is not
// being deleted, or nil.
func findJob(ctx context.Context, client kubernetes.Interface, ns, runID string) (*batchv1.Job, error) {
	if runID == "" {
		return nil, nil
	}
	list, err := client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelRunID + "=" + LabelValue(runID)})
	if err != nil {
		return nil, fmt.Errorf("look for the job of run %s in namespace %s: %w", runID, ns, err)
	}
	var found *batchv1.Job
	for i := range list.Items {
		j := &list.Items[i]
		if j.DeletionTimestamp != nil || j.Annotations[AnnotationRunID] != runID {
			continue
		}
		if found == nil || j.CreationTimestamp.Before(&found.CreationTimestamp) {
			found = j
		}
	}
	return found, nil
}

// mainContainer is the container whose exit code and log are the run's: the
// one named ContainerName, else the first.
func mainContainer(spec corev1.PodSpec) string {
	for _, c := range spec.Containers {
		if c.Name == ContainerName {
			return c.Name
		}
	}
	if len(spec.Containers) == 0 {
		return ""
	}
	return spec.Containers[0].Name
}
