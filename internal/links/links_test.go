package links

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/runner/kube"
)

func TestEnvSecrets(t *testing.T) {
	env := map[string]string{"PVN_SECRET_DB_PASSWORD": "s3cret", "PVN_SECRET_DB_PASSWORD_2": "older", "PVN_SECRET_PIN": "e", "PVN_SECRET_PIN_2": "12345"}
	lookup := EnvSecrets(func(k string) (string, bool) { v, ok := env[k]; return v, ok })

	tests := map[string]struct {
		key, version, want, err string
	}{
		"key upper-cased, dashes to underscores": {key: "db-password", want: "s3cret"},
		"a version with its own variable":        {key: "db-password", version: "2", want: "older"},
		"a version without one: the key's value": {key: "db-password", version: "7", want: "s3cret"},
		"missing: says which variable to set":    {key: "api.token", err: `secret "api.token": set $PVN_SECRET_API_TOKEN in the bot's environment`},
		"too short to be redacted":               {key: "pin", err: `secret "pin": $PVN_SECRET_PIN holds 1 character: a secret needs at least 4, since a shorter one cannot be redacted from job output without destroying it`},
		"a version long enough":                  {key: "pin", version: "2", want: "12345"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := lookup.Lookup(tt.key, tt.version)
			if tt.err != "" {
				assert.EqualError(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

const twoContexts = `apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: staging-cluster
  context: {cluster: a, user: u}
- name: prod-cluster
  context: {cluster: a, user: u}
current-context: prod-cluster
`

func TestKubeconfigClusters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(path, []byte(twoContexts), 0o600))

	tests := map[string]struct {
		context, name string
		want          []kube.Cluster
		err           string
	}{
		"every context under its own name": {want: []kube.Cluster{
			{Name: "prod-cluster", Kubeconfig: path, Context: "prod-cluster"},
			{Name: "staging-cluster", Kubeconfig: path, Context: "staging-cluster"},
		}},
		"one context": {context: "staging-cluster", want: []kube.Cluster{{Name: "staging-cluster", Kubeconfig: path, Context: "staging-cluster"}}},
		"a name for the current context": {name: "my-kubernetes-runtime", want: []kube.Cluster{
			{Name: "my-kubernetes-runtime", Kubeconfig: path, Context: "prod-cluster"},
		}},
		"an unknown context": {context: "nope", err: `has no context "nope"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := KubeconfigClusters(path, tt.context, tt.name)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			links := Links{Clusters: got}
			assert.Equal(t, links.ClusterNames(), links.Linked().KubernetesRuntimes)
		})
	}
	_, err := KubeconfigClusters(filepath.Join(t.TempDir(), "missing"), "", "")
	assert.ErrorContains(t, err, "read kubeconfig")
}
