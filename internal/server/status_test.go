package server_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/server"
)

// bot status --config answers "why is this stuck?" from bot serve's store
// while it runs: each waiting row says what it waits for, each failed row
// why it failed. bot backup copies the store meanwhile.
func TestBotStatusAndBackupOfAServedBot(t *testing.T) {
	r := newRig(t)
	good := r.addRepo("acme/deploys", "web")
	broken := r.addRepo("acme/broken", "api")
	broken.commit(map[string]string{"shop.pvn.yaml": strings.Replace(runtimeFiles("acme_broken"),
		`cmd: ['test "$(cat`, `cmd: ['echo "backend unreachable" >&2; exit 7; test "$(cat`, 1)}, "fetch fails")
	r.start(server.Options{})
	r.settled(good)
	r.untilRun(broken, "pvnbot: shop/staging", broken.head, "failure")
	config := r.botYAML()

	status := func(args ...string) (string, string, int) {
		return run(exec.Command(botBin, append([]string{"status", "--config", config}, args...)...))
	}
	out, errOut, code := status()
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "acme/broken (deploys main)\n")
	assert.Contains(t, out, "acme/deploys (deploys main)\n")
	assert.Regexp(t, `(?m)^shop\s+web\s+production\s+WAITING_MANUAL_APPROVAL\s.*waiting for approval: 0 of 1 approvers$`, out)
	assert.Regexp(t, `(?m)^shop\s+api\s+staging\s+FAILED\s.*fetch failed: exit code 7: backend unreachable$`, out)
	assert.Regexp(t, `(?m)^shop\s+api\s+production\s+FAILED\s.*fetch failed: exit code 7: backend unreachable$`, out)
	assert.Contains(t, out, "\n1 converged, 1 waiting for manual approval\n")
	assert.Contains(t, out, "\nwebhook deliveries: none waiting\n")

	out, errOut, code = status("--repo", "ACME/deploys", "--json")
	require.Equal(t, 0, code, errOut)
	var got struct {
		Repositories []struct {
			Repository string
			Deploys    string
			Targets    []struct{ Service, ReleaseChannel, Status, Message string }
		}
		WebhookDeliveries struct{ Waiting, GivenUp int }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	require.Len(t, got.Repositories, 1)
	assert.Equal(t, "acme/deploys", got.Repositories[0].Repository)
	assert.Equal(t, "main", got.Repositories[0].Deploys)
	require.Len(t, got.Repositories[0].Targets, 2)
	assert.Equal(t, "WAITING_MANUAL_APPROVAL", got.Repositories[0].Targets[1].Status)

	_, errOut, code = status("--repo", "acme/nothing")
	assert.Equal(t, 1, code)
	assert.Equal(t, "bot status: bot serve does not serve acme/nothing (it serves acme/broken, acme/deploys)\n", errOut)
	_, errOut, code = status("--state", "x.db")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--state is bot run's")

	// A backup of the running bot's store, to a file and to stdout, holds
	// its targets.
	file := filepath.Join(t.TempDir(), "backup.db")
	_, errOut, code = run(exec.Command(botBin, "backup", "--config", config, file))
	require.Equal(t, 0, code, errOut)
	piped, errOut, code := run(exec.Command(botBin, "backup", "--config", config, "-"))
	require.Equal(t, 0, code, errOut)
	fromStdout := filepath.Join(t.TempDir(), "piped.db")
	require.NoError(t, os.WriteFile(fromStdout, []byte(piped), 0o600))
	for _, path := range []string{file, fromStdout} {
		repos, _, err := server.Status(context.Background(), path, "acme/deploys", nil)
		require.NoError(t, err, path)
		assert.Len(t, repos[0].Targets, 2, path)
	}
	_, errOut, code = run(exec.Command(botBin, "backup", "--config", config, file))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "backup.db: it exists")
}

// run runs cmd to its end: its stdout, stderr and exit code.
func run(cmd *exec.Cmd) (string, string, int) {
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run() // the exit code says
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}
