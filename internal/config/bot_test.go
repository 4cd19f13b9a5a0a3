package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadBot(t *testing.T) {
	const secret = "-----BEGIN RSA PRIVATE KEY-----abc"
	path := filepath.Join(t.TempDir(), "bot.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
github:
  web_url: https://github.example.com
  v3_api_url: https://github.example.com/api/v3/
  app:
    integration_id: 42
    webhook_secret: from-file
    private_key: "`+secret+`"
server: {address: 127.0.0.1, port: 9000}
store: {path: /var/lib/pvnbot/state.db}
kubernetesRuntimes:
- {name: prod-cluster, kubeconfig: /etc/kube/prod, context: prod}
- {name: this-cluster, in_cluster: true}
container_registries:
- {name: ghcr, url: ghcr.io/acme}
branches: [main, release]
localRunner: {passEnv: [AWS_PROFILE]}
`), 0o600))
	b, err := LoadBot(path)
	require.NoError(t, err)
	assert.Equal(t, "https://github.example.com", b.GitHub.WebURL)
	assert.Equal(t, int64(42), b.GitHub.App.IntegrationID)
	assert.Equal(t, "from-file", b.GitHub.App.WebhookSecret)
	assert.Equal(t, secret, b.GitHub.App.PrivateKey)
	assert.Equal(t, "127.0.0.1", b.Server.Address)
	assert.Equal(t, 9000, b.Server.Port)
	assert.Equal(t, "/var/lib/pvnbot/state.db", b.Store.Path)
	assert.Equal(t, []KubernetesRuntime{
		{Name: "prod-cluster", Kubeconfig: "/etc/kube/prod", Context: "prod"},
		{Name: "this-cluster", InCluster: true},
	}, b.KubernetesRuntimes)
	assert.Equal(t, []string{"main", "release"}, b.Branches)
	assert.Equal(t, []string{"AWS_PROFILE"}, b.LocalRunner.PassEnv)
	assert.Equal(t, &Linked{KubernetesRuntimes: []string{"prod-cluster", "this-cluster"}, ContainerRegistries: []string{"ghcr"}}, b.Linked())
	assert.Equal(t, "ghcr.io/acme", b.Registry("ghcr").URL)
}

func TestParseBotErrors(t *testing.T) {
	tests := map[string]struct {
		yaml string
		want string
	}{
		"unknown key": {
			yaml: "github:\n  app:\n    integration_id: 1\n    private_key_path: x\n",
			want: "bot.yaml:4:5: bot.github.app: unknown key \"private_key_path\" (want one of: integrationId, webhookSecret, privateKey)",
		},
		"secret of the wrong type is not printed": {
			yaml: "github:\n  app:\n    webhook_secret: [hunter2]\n",
			want: "bot.yaml:3:21: bot.github.app.webhookSecret: want a string, got a list",
		},
		"local is reserved": {
			yaml: "kubernetesRuntimes:\n- name: local\n",
			want: "bot.yaml:2:3: bot.kubernetesRuntimes[0].name: \"local\" is reserved for the local proxy runtime",
		},
		"duplicate registry, port": {
			yaml: "server: {port: 70000}\ncontainerRegistries:\n- {name: r, url: a}\n- {name: r, url: b}\n",
			want: "bot.yaml:1:10: bot.server.port: 70000 is not a port number\nbot.yaml:4:4: bot.containerRegistries[1].name: duplicate container registry \"r\"",
		},
		"syntax": {
			yaml: "github: [\n",
			want: "bot.yaml:1:1: invalid YAML: did not find expected node content",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseBot("bot.yaml", []byte(tt.yaml))
			assert.EqualError(t, err, tt.want)
			assert.NotContains(t, err.Error(), "hunter2")
		})
	}
	b, err := ParseBot("bot.yaml", nil)
	require.NoError(t, err, "an empty bot.yaml is all defaults")
	assert.Equal(t, DefaultServerPort, b.Server.Port)
	assert.Equal(t, &Linked{KubernetesRuntimes: []string{}, ContainerRegistries: []string{}}, b.Linked())
}
