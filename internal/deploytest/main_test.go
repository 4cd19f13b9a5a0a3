package deploytest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/pvnbot/pvnbot/internal/kubetest"
)

// waitTimeout bounds every wait on the plane: generous, since the machine is
// shared, but a hang still ends.
const waitTimeout = 90 * time.Second

var plane *kubetest.Plane

// TestMain starts one control plane for the package.
func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, kubetest.Options{}, &plane)) }

// repoRoot is the repository's root, from this package's folder.
var repoRoot = filepath.Join("..", "..")

func deployDir() string { return filepath.Join(repoRoot, "deploy") }

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// kubectl runs kubectl (hack/kube/build.sh builds it beside the plane's
// binaries) against the test plane as its admin and returns its output; a
// non-zero exit is returned as an error holding stderr.
func kubectl(t testing.TB, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	dir, err := kubetest.BinDir()
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "kubectl"), append([]string{"--kubeconfig", plane.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), errors.New(err.Error() + ": " + stderr.String())
	}
	return stdout.String(), nil
}

// build renders a kustomization, as `kubectl apply -k` does, into objects.
func build(t testing.TB, dir string) []runtime.Object {
	t.Helper()
	out, err := kubectl(t, ctxFor(t, time.Minute), "kustomize", dir)
	require.NoError(t, err)
	return decodeAll(t, []byte(out))
}

// decodeAll decodes a YAML stream into typed objects.
func decodeAll(t testing.TB, data []byte) []runtime.Object {
	t.Helper()
	dec := yamlutil.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []runtime.Object
	for {
		var raw runtime.RawExtension
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if len(bytes.TrimSpace(raw.Raw)) == 0 || string(bytes.TrimSpace(raw.Raw)) == "null" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(raw.Raw, nil, nil)
		require.NoError(t, err, string(raw.Raw))
		objs = append(objs, obj)
	}
	return objs
}

// only returns the objects of type T.
func only[T runtime.Object](objs []runtime.Object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the only object of type T, failing t otherwise.
func one[T runtime.Object](t testing.TB, objs []runtime.Object) T {
	t.Helper()
	got := only[T](objs)
	require.Len(t, got, 1, "want exactly one %T", *new(T))
	return got[0]
}
