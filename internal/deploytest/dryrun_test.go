package deploytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ensureNamespace creates the base's Namespace for real: a server dry run
// creates nothing, so the objects that go into a namespace need it to exist
// already (a real `kubectl apply -k` creates it first).
func ensureNamespace(t *testing.T) {
	t.Helper()
	ns := one[*corev1.Namespace](t, build(t, deployDir()))
	_, err := plane.Client.CoreV1().Namespaces().Create(ctxFor(t, waitTimeout), ns, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
}

// `kubectl apply --dry-run=server -k deploy/` passes on a real API server
// (schema, strict field validation, admission), object by object; and so
// does the Secret template.
func TestServerDryRun(t *testing.T) {
	ensureNamespace(t)
	ctx := ctxFor(t, 2*time.Minute)
	out, err := kubectl(t, ctx, "apply", "--dry-run=server", "-k", deployDir())
	require.NoError(t, err, out)
	for _, want := range []string{
		"namespace/pvnbot", "serviceaccount/pvnbot", "clusterrole.rbac.authorization.k8s.io/pvnbot-runner",
		"clusterrolebinding.rbac.authorization.k8s.io/pvnbot-runner", "configmap/pvnbot-config-",
		"service/pvnbot", "persistentvolumeclaim/pvnbot-state", "deployment.apps/pvnbot",
	} {
		assert.Contains(t, out, want)
	}
	assert.Equal(t, 8, strings.Count(out, "(server dry run)"), out)

	out, err = kubectl(t, ctx, "apply", "--dry-run=server", "-f", filepath.Join(deployDir(), "secret.template.yaml"))
	require.NoError(t, err, out)
	assert.Contains(t, out, "secret/pvnbot-github created (server dry run)")
}

// The dry run is not a formality: a base with a misspelled field fails it.
func TestServerDryRunRefusesABrokenBase(t *testing.T) {
	ensureNamespace(t)
	dir := t.TempDir()
	entries, err := os.ReadDir(deployDir())
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(deployDir(), e.Name()))
		require.NoError(t, err)
		if e.Name() == "deployment.yaml" {
			data = []byte(strings.Replace(string(data), "readinessProbe:", "readinessProbes:", 1))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644))
	}
	out, err := kubectl(t, ctxFor(t, 2*time.Minute), "apply", "--dry-run=server", "-k", dir)
	require.Error(t, err, out)
	assert.Contains(t, err.Error(), `unknown field "spec.template.spec.containers[0].readinessProbes"`)
}
