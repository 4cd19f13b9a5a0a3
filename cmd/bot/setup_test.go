package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSetupUsage(t *testing.T) {
	code, _, stderr := runBot(t, "setup")
	assert.Equal(t, 2, code, "--webhook-url is required")
	assert.Contains(t, stderr, "usage: bot setup --webhook-url URL")

	code, _, stderr = runBot(t, "setup", "--webhook-url", "https://x.example/api/github/hook", "extra")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "usage: bot setup")

	code, stdout, _ := runBot(t, "help")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "setup")
}

// An existing bot.yaml stops setup before it serves anything.
func TestSetupRefusesExistingConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.yaml")
	require.NoError(t, os.WriteFile(path, []byte("github: {}\n"), 0o600))
	code, stdout, stderr := runBot(t, "setup", "--listen", "127.0.0.1:0", "--config", path,
		"--webhook-url", "https://pvnbot.example.org/api/github/hook")
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Equal(t, "bot setup: "+path+" exists: pass --force to overwrite it\n", stderr)

	code, _, stderr = runBot(t, "setup", "--listen", "127.0.0.1:0", "--config", path,
		"--webhook-url", "https://pvnbot.example.org/api/github/hook", "--github-url", "ghe.example.com")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `bot setup: GitHub URL "ghe.example.com": want the web URL`)
}
