package kube

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/pvnbot/pvnbot/internal/runner"
)

func TestLabelValue(t *testing.T) {
	long := strings.Repeat("a", 80)
	tests := map[string]struct {
		in   string
		want string // empty: only check validity and distinctness
	}{
		"valid stays":        {in: "getInfo", want: "getInfo"},
		"commit stays":       {in: "0123456789abcdef0123456789abcdef01234567", want: "0123456789abcdef0123456789abcdef01234567"},
		"empty stays":        {in: "", want: ""},
		"slashes replaced":   {in: "demo/shop/staging"},
		"too long cut":       {in: long},
		"only invalid chars": {in: "///"},
		"trailing dash":      {in: "run-"},
	}
	seen := map[string]string{}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := LabelValue(tc.in)
			assert.Empty(t, validation.IsValidLabelValue(got), "%q", got)
			if tc.want != "" || tc.in == "" {
				assert.Equal(t, tc.want, got)
			}
			assert.Equal(t, got, LabelValue(tc.in), "deterministic")
		})
		seen[LabelValue(tc.in)] = tc.in
	}
	assert.Len(t, seen, len(tests), "distinct inputs give distinct values")
	assert.NotEqual(t, LabelValue(long+"x"), LabelValue(long+"y"))
}

func TestNames(t *testing.T) {
	tests := map[string]struct {
		service string
		action  runner.Action
		want    string
	}{
		"apply":        {service: "shop", action: runner.ActionApply, want: "shop-apply-"},
		"getInfo":      {service: "shop", action: runner.ActionGetInfo, want: "shop-getinfo-"},
		"long service": {service: strings.Repeat("s", 63), action: runner.ActionFetch},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := GenerateName(runner.Spec{Service: tc.service, Action: tc.action})
			if tc.want != "" {
				assert.Equal(t, tc.want, got)
			}
			assert.LessOrEqual(t, len(got), 53, "room for the 5-character suffix, and for pod names")
			assert.Empty(t, validation.IsDNS1123Label(got+"abcde"))
		})
	}
	assert.Equal(t, "pvn-proxy-runtime-vm", DefaultNamespace("vm"))
	long := DefaultNamespace(strings.Repeat("r", 63))
	assert.Empty(t, validation.IsDNS1123Label(long))
	assert.NotEqual(t, long, DefaultNamespace(strings.Repeat("r", 62)+"x"))
}

func TestBuildJob(t *testing.T) {
	spec := runner.Spec{
		RunID: "run-1", Action: runner.ActionApply, Service: "shop", Application: "demo", ReleaseChannel: "prod",
		Runtime: "vm", Commit: "abc", DesiredVersion: "v2", Image: "example.org/deploy:1",
		Entrypoint: []string{"/bin/deploy"}, Cmd: []string{"--to", "prod"}, ServiceAccount: "deployer",
		WorkingDirectory: "/work", TTL: 10 * time.Minute,
		Env: []runner.EnvVar{
			{Name: "PVN_ACTION", Value: "apply"},
			{Name: "TOKEN", Value: "ignored", SecretRef: &runner.SecretRef{Name: "creds", Key: "token"}},
		},
	}
	job, err := buildJob(spec, 90*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "shop-apply-", job.GenerateName)
	assert.Equal(t, int32(0), *job.Spec.BackoffLimit)
	assert.Equal(t, int32(600), *job.Spec.TTLSecondsAfterFinished)
	assert.Equal(t, int64(150), *job.Spec.ActiveDeadlineSeconds, "the timeout and a margin")
	pod := job.Spec.Template.Spec
	assert.Equal(t, corev1.RestartPolicyNever, pod.RestartPolicy)
	assert.Equal(t, "deployer", pod.ServiceAccountName)
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	assert.Equal(t, ContainerName, c.Name)
	assert.Equal(t, "example.org/deploy:1", c.Image)
	assert.Equal(t, []string{"/bin/deploy"}, c.Command)
	assert.Equal(t, []string{"--to", "prod"}, c.Args)
	assert.Equal(t, "/work", c.WorkingDir)
	assert.Equal(t, []corev1.EnvVar{
		{Name: "PVN_ACTION", Value: "apply"},
		{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "token"}}},
	}, c.Env)
	assert.Equal(t, "run-1", job.Labels[LabelRunID])
	assert.Equal(t, "v2", job.Annotations[AnnotationDesiredVersion])

	_, err = buildJob(runner.Spec{Runtime: "vm", Action: runner.ActionFetch}, time.Hour)
	assert.EqualError(t, err, "runtime vm, fetch: no image to run")
}

func TestDecodeManifest(t *testing.T) {
	const job = "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: x}]\n"
	tests := map[string]struct {
		manifest string
		wantErr  string
	}{
		"one job":             {manifest: job},
		"leading separator":   {manifest: "---\n" + job + "---\n"},
		"json":                {manifest: `{"apiVersion":"batch/v1","kind":"Job","spec":{"template":{"spec":{"containers":[{"name":"c","image":"x"}]}}}}`},
		"two objects":         {manifest: job + "---\napiVersion: v1\nkind: ConfigMap\n", wantErr: "job manifest holds 2 objects: it must hold exactly one batch/v1 Job"},
		"empty":               {manifest: "# nothing\n", wantErr: "job manifest holds 0 objects"},
		"not a job":           {manifest: "apiVersion: v1\nkind: Pod\n", wantErr: `job manifest holds a "Pod" of apiVersion "v1": it must hold one batch/v1 Job`},
		"old api":             {manifest: "apiVersion: batch/v1beta1\nkind: Job\n", wantErr: `apiVersion "batch/v1beta1"`},
		"unknown field":       {manifest: job + "  parallelizm: 2\n", wantErr: `unknown field "parallelizm"`},
		"no containers":       {manifest: "apiVersion: batch/v1\nkind: Job\nspec: {}\n", wantErr: "the Job has no containers"},
		"not yaml":            {manifest: "apiVersion: [", wantErr: "job manifest:"},
		"wrong type of field": {manifest: "apiVersion: batch/v1\nkind: Job\nspec: {backoffLimit: many}\n", wantErr: "job manifest: batch/v1 Job:"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := decodeManifest([]byte(tc.manifest))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "x", got.Spec.Template.Spec.Containers[0].Image)
		})
	}
}
