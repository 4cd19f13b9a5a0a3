package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// botBin is the bot binary, built once for the package's tests that run
// bot serve as a process.
var botBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pvnbot-server-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	botBin = filepath.Join(dir, "bot")
	if out, err := exec.Command("go", "build", "-o", botBin, "github.com/pvnbot/pvnbot/cmd/bot").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build bot: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// botYAML writes the bot.yaml of the rig for bot serve, listening on a
// port of the system's choosing.
func (r *rig) botYAML() string {
	r.t.Helper()
	doc := map[string]any{
		"github": map[string]any{
			"webUrl": r.gh.URL(), "v3ApiUrl": r.gh.APIURL(),
			"app": map[string]any{"integrationId": r.gh.AppID(), "webhookSecret": r.gh.WebhookSecret(), "privateKey": r.gh.PrivateKeyPEM()},
		},
		"server":      map[string]any{"address": "127.0.0.1", "port": 0},
		"store":       map[string]any{"path": filepath.Join(r.dir, "pvnbot.db")},
		"localRunner": map[string]any{"passEnv": []string{"E2E_STATE"}},
	}
	data, err := yaml.Marshal(doc)
	require.NoError(r.t, err)
	path := filepath.Join(r.dir, "bot.yaml")
	require.NoError(r.t, os.WriteFile(path, data, 0o600))
	return path
}

// process is a running bot serve.
type process struct {
	cmd  *exec.Cmd
	addr string
	logs chan string
}

// serveProcess starts bot serve and points the fake's webhooks at it.
func (r *rig) serveProcess(config string) *process {
	r.t.Helper()
	cmd := exec.Command(botBin, "serve", "--config", config, "--resync", "1h")
	cmd.Env = append(os.Environ(), "E2E_STATE="+r.world)
	stderr, err := cmd.StderrPipe()
	require.NoError(r.t, err)
	require.NoError(r.t, cmd.Start())
	p := &process{cmd: cmd, logs: make(chan string, 10000)}
	r.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		var entry struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry.Msg == "listening" {
			p.addr = entry.Addr
			break
		}
		r.t.Log(lines.Text())
	}
	require.NotEmpty(r.t, p.addr, "bot serve never listened")
	go func() {
		for lines.Scan() {
			select {
			case p.logs <- lines.Text():
			default:
			}
		}
		close(p.logs)
	}()
	r.hookAddr = "http://" + p.addr + "/api/github/hook"
	r.gh.SetWebhookURL(r.hookAddr)
	return p
}

// bot serve killed with SIGKILL in the middle of an apply, then started
// again: the check runs still reach their final state, none duplicated, and
// no apply's effect happens twice.
func TestKilledMidApplyThenRestarted(t *testing.T) {
	r := newRig(t)
	rp := r.addRepo("acme/deploys", "web", "api")
	gate := filepath.Join(r.world, "gate")
	require.NoError(t, os.WriteFile(gate, nil, 0o644))
	config := r.botYAML()

	first := r.serveProcess(config)
	r.until("an apply runs", func() bool {
		cr, ok := r.run(rp, "pvnbot: shop/staging", rp.head)
		return ok && cr.Status == "in_progress" && strings.Contains(cr.Summary, "APPLYING")
	})
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	_ = first.cmd.Wait()
	require.NoError(t, os.Remove(gate))

	second := r.serveProcess(config)
	r.untilRun(rp, "pvnbot: shop/staging", rp.head, "success")
	r.untilRun(rp, "pvnbot: shop/production", rp.head, "action_required")
	count := map[string]int{}
	for _, cr := range r.gh.CheckRuns(rp.Repo) {
		count[cr.Name]++
	}
	assert.Equal(t, map[string]int{"pvnbot: shop/staging": 1, "pvnbot: shop/production": 1}, count, "found again, not created again")
	assert.ElementsMatch(t, []string{"api/staging", "web/staging"}, rp.applies(t), "each apply took effect once")

	require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, second.cmd.Wait(), "SIGTERM stops bot serve cleanly")
	var stopped bool
	for line := range second.logs {
		stopped = stopped || strings.Contains(line, `"msg":"stopped"`)
	}
	assert.True(t, stopped)
}
