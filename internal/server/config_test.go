package server_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/githubtest"
	"github.com/pvnbot/pvnbot/internal/server"
)

func TestLoadConfigTakesTheEnvironment(t *testing.T) {
	gh := githubtest.New(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "bot.yaml")
	require.NoError(t, os.WriteFile(path, []byte("github:\n  app:\n    integration_id: 42\n    webhook_secret: from-file\nserver: {port: 9000}\n"), 0o600))
	t.Setenv("GITHUB_APP_WEBHOOK_SECRET", "from-env")
	t.Setenv("GITHUB_APP_PRIVATE_KEY", gh.PrivateKeyPEM())

	c, err := server.LoadConfig(path)
	require.NoError(t, err)
	assert.Equal(t, "from-env", c.GitHub.App.WebhookSecret, "the environment overrides the file")
	assert.Equal(t, gh.PrivateKeyPEM(), c.GitHub.App.PrivateKey)
	assert.Equal(t, int64(42), c.GitHub.App.IntegrationID)
	assert.Equal(t, server.DefaultWebURL, c.GitHub.WebURL)
	assert.Equal(t, server.DefaultV3APIURL, c.GitHub.V3APIURL)
	assert.Equal(t, filepath.Join(dir, "pvnbot.db"), c.StorePath, "the store beside bot.yaml by default")
	assert.Equal(t, ":9000", c.Addr())

	t.Setenv("GITHUB_APP_WEBHOOK_SECRET", "")
	require.NoError(t, os.WriteFile(path, []byte("github:\n  app:\n    integration_id: 42\n"), 0o600))
	_, err = server.LoadConfig(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), "github.app.webhookSecret is empty")
}

// The commented example in fixtures/ is a bot.yaml bot serve reads.
func TestExampleBotYAML(t *testing.T) {
	t.Setenv("GITHUB_APP_PRIVATE_KEY", githubtest.New(t).PrivateKeyPEM())
	c, err := server.LoadConfig("../../fixtures/bot.example.yaml")
	require.NoError(t, err)
	assert.Equal(t, int64(123456), c.GitHub.App.IntegrationID)
	assert.Equal(t, "/var/lib/pvnbot/pvnbot.db", c.StorePath)
	assert.Equal(t, []string{"AWS_PROFILE"}, c.Bot.LocalRunner.PassEnv)
}
