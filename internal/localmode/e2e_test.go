package localmode_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/localmode"
	"github.com/pvnbot/pvnbot/internal/metrics/metricstest"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// botBin is the bot binary built once for every test of the package: the
// tests run `bot run` as the operator does, a process that can be killed.
var botBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pvnbot-localmode-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	botBin = filepath.Join(dir, "bot")
	out, err := exec.Command("go", "build", "-o", botBin, "github.com/pvnbot/pvnbot/cmd/bot").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build bot: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shopRuntime deploys a version by writing it to $E2E_STATE/<channel>/<service>.
// fetch exits with the code in $E2E_STATE/fetch-exit when that file exists.
const shopRuntime = `runtime:
  name: files
  custom:
    proxyRuntime: {runtime: local}
    apply:
      taskConfig:
        program: {entrypoint: [sh], cmd: [scripts/apply.sh, "{{.Params.version}}"]}
    fetch:
      taskConfig:
        program: {entrypoint: [sh], cmd: [scripts/fetch.sh, "{{.Params.version}}"]}
      pollInterval: 0.2s
      steadyStatePollInterval: 1h
    parameters:
    - {name: version, required: true, string: {}}
---
application:
  name: shop
  releaseChannels:
  - name: staging
    runtimes: [{runtime: files}]
  - name: production
    runtimes: [{runtime: files}]
    preconditions:
    - releaseChannelStable: {releaseChannel: staging}
    - manualApproval: {name: prod-gate}
`

const applyScript = `set -eu
d="$E2E_STATE/$PVN_RELEASE_CHANNEL"
mkdir -p "$d"
echo "$1" > "$d/$PVN_SERVICE.tmp"
mv "$d/$PVN_SERVICE.tmp" "$d/$PVN_SERVICE"
echo "deployed $PVN_SERVICE $1"
`

const fetchScript = `set -eu
if [ -f "$E2E_STATE/fetch-exit" ]; then
  echo "backend unreachable" >&2
  exit "$(cat "$E2E_STATE/fetch-exit")"
fi
f="$E2E_STATE/$PVN_RELEASE_CHANNEL/$PVN_SERVICE"
if [ -f "$f" ] && [ "$(cat "$f")" = "$1" ]; then exit 0; fi
exit 2
`

func service(name, version string) string {
	return fmt.Sprintf("service:\n  name: %s\n  application: shop\n  customRuntime:\n    parameterValues:\n    - {name: version, string: %q}\n", name, version)
}

// fixture is a repository, a state file and a folder the runtime deploys
// into, all in the test's temporary directory.
type fixture struct {
	t        *testing.T
	repo     *gitrepotest.Repo
	state    string
	deployed string
}

func newShop(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, repo: gitrepotest.New(t), state: filepath.Join(t.TempDir(), "state.db"), deployed: t.TempDir()}
	f.repo.Write("runtime.pvn.yaml", shopRuntime)
	f.repo.Write("scripts/apply.sh", applyScript)
	f.repo.Write("scripts/fetch.sh", fetchScript)
	for name, v := range map[string]string{"web": "1.0", "api": "2.0", "worker": "3.0"} {
		f.repo.Write("services/"+name+".pvn.yaml", service(name, v))
	}
	return f
}

// bot runs the bot binary to its end and returns its stdout, stderr and
// exit code.
func (f *fixture) bot(args ...string) (string, string, int) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, botBin, args...)
	cmd.Env = append(os.Environ(), "E2E_STATE="+f.deployed)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		f.t.Fatalf("run bot %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

func (f *fixture) runOnce() (string, int) {
	f.t.Helper()
	out, errOut, code := f.bot("run", "--repo", f.repo.Dir, "--state", f.state, "--once", "--pass-env", "E2E_STATE")
	f.t.Logf("bot run --once (exit %d):\n%s%s", code, out, errOut)
	return out + errOut, code
}

// open opens the state file and returns the repository's records.
func (f *fixture) open() *store.SQLiteRepo {
	f.t.Helper()
	st, err := store.OpenSQLite(context.Background(), f.state)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { st.Close() })
	name, err := localmode.RepoName(f.repo.Dir)
	require.NoError(f.t, err)
	return st.RepoOf(name)
}

func (f *fixture) statuses() map[string]store.Status {
	f.t.Helper()
	states, err := f.open().LoadTargets(context.Background())
	require.NoError(f.t, err)
	out := map[string]store.Status{}
	for _, st := range states {
		out[st.Key().Service+"/"+st.Key().ReleaseChannel] = st.Status
	}
	return out
}

// appliesSince lists "service/channel@commit" for every apply started at
// or after since.
func (f *fixture) appliesSince(since time.Time) []string {
	f.t.Helper()
	runs, err := f.open().RecentRuns(context.Background(), 0)
	require.NoError(f.t, err)
	var out []string
	for _, r := range runs {
		if r.Action == runner.ActionApply && !r.Started.Before(since) {
			out = append(out, fmt.Sprintf("%s/%s@%s", r.Key.Service, r.Key.ReleaseChannel, r.Commit[:7]))
		}
	}
	return out
}

func all(status store.Status, targets ...string) map[string]store.Status {
	out := map[string]store.Status{}
	for _, t := range targets {
		out[t] = status
	}
	return out
}

func merge(ms ...map[string]store.Status) map[string]store.Status {
	out := map[string]store.Status{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestRunOnceStagingThenApprovedProductionThenOneServiceChanges(t *testing.T) {
	f := newShop(t)
	c1 := f.repo.Commit("three services")
	staging := []string{"api/staging", "web/staging", "worker/staging"}
	production := []string{"api/production", "web/production", "worker/production"}

	out, code := f.runOnce()
	require.Equal(t, 0, code, out)
	assert.Equal(t, merge(all(store.StatusConverged, staging...), all(store.StatusWaitingManualApproval, production...)), f.statuses())
	assert.Contains(t, out, "3 converged, 3 waiting for manual approval")
	assert.Regexp(t, `shop\s+web\s+production\s+WAITING_MANUAL_APPROVAL\s+`+c1[:12], out, "the final table")

	stdout, stderr, code := f.bot("approve", "--state", f.state, "--as", "alice", "shop", "production")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "approved shop/api/production as alice\napproved shop/web/production as alice\napproved shop/worker/production as alice\n", stdout)

	out, code = f.runOnce()
	require.Equal(t, 0, code, out)
	assert.Equal(t, all(store.StatusConverged, append(staging, production...)...), f.statuses())

	f.repo.Write("services/web.pvn.yaml", service("web", "1.1"))
	c2 := f.repo.Commit("web 1.1")
	before := time.Now()
	out, code = f.runOnce()
	require.Equal(t, 0, code, out)
	assert.Equal(t, merge(all(store.StatusConverged, staging...), all(store.StatusConverged, "api/production", "worker/production"),
		all(store.StatusWaitingManualApproval, "web/production")), f.statuses())
	assert.Equal(t, []string{"web/staging@" + c2[:7]}, f.appliesSince(before), "only the changed service re-applies, production waits")
	data, err := os.ReadFile(filepath.Join(f.deployed, "production", "web"))
	require.NoError(t, err)
	assert.Equal(t, "1.0\n", string(data), "production keeps the approved version")

	_, stderr, code = f.bot("approve", "--state", f.state, "--as", "alice", "shop", "production", "web")
	require.Equal(t, 0, code, stderr)
	before = time.Now()
	out, code = f.runOnce()
	require.Equal(t, 0, code, out)
	assert.Equal(t, []string{"web/production@" + c2[:7]}, f.appliesSince(before))
	assert.Equal(t, all(store.StatusConverged, append(staging, production...)...), f.statuses())
}

func TestRunOnceFetchErrorShowsItAndAppliesNothing(t *testing.T) {
	f := newShop(t)
	f.repo.Commit("three services")
	require.NoError(t, os.WriteFile(filepath.Join(f.deployed, "fetch-exit"), []byte("7"), 0o600))

	out, code := f.runOnce()
	assert.Equal(t, 1, code, "a failed target fails --once")
	assert.Contains(t, out, "fetch failed: exit code 7")
	assert.Contains(t, out, "backend unreachable", "the job's stderr explains")
	assert.Empty(t, f.appliesSince(time.Time{}))
	assert.Equal(t, all(store.StatusFailed, "api/staging", "web/staging", "worker/staging"), filter(f.statuses(), "/staging"))
	_, err := os.Stat(filepath.Join(f.deployed, "staging"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing was deployed")
}

func filter(m map[string]store.Status, suffix string) map[string]store.Status {
	out := map[string]store.Status{}
	for k, v := range m {
		if strings.HasSuffix(k, suffix) {
			out[k] = v
		}
	}
	return out
}

func TestRunOnceInvalidCommitKeepsThePreviousDesiredState(t *testing.T) {
	f := newShop(t)
	c1 := f.repo.Commit("three services")
	_, code := f.runOnce()
	require.Equal(t, 0, code)

	f.repo.Write("services/web.pvn.yaml", "service:\n  name: web\n  application: shop\n  colour: blue\n")
	f.repo.Write("runtime.pvn.yaml", strings.Replace(shopRuntime, "runtime: local", "runtime: my-cluster", 1))
	f.repo.Commit("broken")
	out, code := f.runOnce()
	require.Equal(t, 0, code, out)
	assert.Regexp(t, `services/web.pvn.yaml:4:3: .*colou?r`, out, "errors at path:line:col")
	assert.Regexp(t, `runtime.pvn.yaml:4:\d+: .*my-cluster`, out)
	assert.Contains(t, out, "name Kubernetes runtimes bot run is not linked to; link them with --kubeconfig")
	assert.Contains(t, out, "the previous desired state stays in force")
	states, err := f.open().LoadTargets(context.Background())
	require.NoError(t, err)
	require.Len(t, states, 6)
	for _, st := range states {
		assert.Equal(t, c1, st.Target.Commit, st.Key().String())
	}
}

func TestRunOnceShowsConfigWarnings(t *testing.T) {
	f := newShop(t)
	f.repo.Write("services/web.pvn.yaml", "service:\n  name: web\n  application: shop\n  labels: {team: storefront}\n"+
		"  customRuntime:\n    parameterValues:\n    - {name: version, string: \"1.0\"}\n")
	f.repo.Commit("labels")
	out, code := f.runOnce()
	require.Equal(t, 0, code, out)
	assert.Regexp(t, `services/web.pvn.yaml:4:3: warning: .*labels`, out, "warnings at path:line:col, and the commit is taken")
	assert.Equal(t, store.StatusConverged, f.statuses()["web/staging"])
}

// TestRunApprovedWhileRunning drives a long-running `bot run`: an approval
// given meanwhile is taken within the poll interval, and SIGTERM stops it
// cleanly.
func TestRunApprovedWhileRunning(t *testing.T) {
	f := newShop(t)
	f.repo.Commit("three services")
	cmd := exec.Command(botBin, "run", "--repo", f.repo.Dir, "--state", f.state, "--pass-env", "E2E_STATE", "--poll", "100ms")
	cmd.Env = append(os.Environ(), "E2E_STATE="+f.deployed)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	waitFor := func(what ...string) {
		t.Helper()
		seen := map[string]bool{}
		for len(seen) < len(what) && lines.Scan() {
			for _, w := range what {
				if strings.Contains(lines.Text(), w) {
					seen[w] = true
				}
			}
		}
		require.Len(t, seen, len(what), "bot run ended before %v; stderr:\n%s", what, stderr.String())
	}
	waitFor("shop/api/production     WAITING_MANUAL_APPROVAL", "shop/web/production     WAITING_MANUAL_APPROVAL", "shop/worker/production  WAITING_MANUAL_APPROVAL")

	out, errOut, code := f.bot("approve", "--state", f.state, "--as", "bob", "shop", "production", "web")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "approved shop/web/production as bob\n", out, "the running bot took the approval")

	waitFor("shop/web/production     CONVERGED")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	rest, _ := io.ReadAll(stdout)
	err = cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 130, exit.ExitCode())
	assert.Contains(t, string(rest), "stopped; the next bot run carries on from here")
	assert.Equal(t, store.StatusConverged, f.statuses()["web/production"])
	assert.Equal(t, store.StatusWaitingManualApproval, f.statuses()["api/production"])
}

func TestStatusAndApproveRefusals(t *testing.T) {
	f := newShop(t)
	f.repo.Commit("three services")
	_, code := f.runOnce()
	require.Equal(t, 0, code)

	out, _, code := f.bot("status", "--state", f.state)
	require.Equal(t, 0, code)
	assert.Regexp(t, `(?m)^APPLICATION\s+SERVICE\s+CHANNEL\s+STATUS\s+COMMIT\s+LAST FETCH\s+LAST APPLY\s+INFO\s+MESSAGE$`, out)
	assert.Regexp(t, `(?m)^shop\s+api\s+staging\s+CONVERGED\s+[0-9a-f]{12}\s+exit 0 at \d\d:\d\d:\d\d\s+exit 0 at`, out)

	out, _, code = f.bot("status", "--state", f.state, "--json")
	require.Equal(t, 0, code)
	assert.Contains(t, out, `"releaseChannel": "production"`)
	assert.Contains(t, out, `"status": "WAITING_MANUAL_APPROVAL"`)

	tests := map[string]struct {
		args []string
		want string
	}{
		"unknown application": {[]string{"shp", "production"}, `refused: unknown application "shp" (known: shop)`},
		"unknown channel":     {[]string{"shop", "prod"}, `refused: application shop has no release channel "prod" (channels: production, staging)`},
		"unknown service":     {[]string{"shop", "production", "web", "db"}, `refused: shop/production has no service "db" (services: api, web, worker)`},
		"nothing waits":       {[]string{"shop", "staging"}, "refused: nothing in shop/staging is waiting for approval"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, errOut, code := f.bot(append([]string{"approve", "--state", f.state, "--as", "carol"}, tc.args...)...)
			assert.Equal(t, 1, code)
			assert.Contains(t, errOut, tc.want)
		})
	}
	_, _, code = f.bot("approve", "--state", f.state, "--as", "carol", "shop", "production")
	require.Equal(t, 0, code)
	_, errOut, code := f.bot("approve", "--state", f.state, "--as", "carol", "shop", "production")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "refused: carol already approved shop/production")
}

// lockedBuffer is a bytes.Buffer a process writes while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// bot run --metrics-listen serves the run's metrics while it runs: the
// jobs, the targets by status, staging's time to converge.
func TestRunServesMetrics(t *testing.T) {
	f := newShop(t)
	f.repo.Commit("three services")
	cmd := exec.Command(botBin, "run", "--repo", f.repo.Dir, "--state", f.state, "--pass-env", "E2E_STATE", "--metrics-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "E2E_STATE="+f.deployed)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = &lockedBuffer{}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	var url string
	waiting := 0
	for waiting < 3 && lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "metrics at "); ok {
			url = u
		}
		if strings.Contains(lines.Text(), "/production") && strings.Contains(lines.Text(), "WAITING_MANUAL_APPROVAL") {
			waiting++
		}
	}
	require.Equal(t, 3, waiting, "bot run ended early; stderr:\n%s", cmd.Stderr)
	require.NotEmpty(t, url)

	m := metricstest.Scrape(t, url)
	assert.Equal(t, 3.0, m.Value("pvnbot_job_runs_total", "action=apply", "result=success"))
	assert.Equal(t, 3.0, m.Value("pvnbot_targets", "status=CONVERGED"))
	assert.Equal(t, 3.0, m.Value("pvnbot_targets", "status=WAITING_MANUAL_APPROVAL"))
	assert.Equal(t, 1.0, m.Count("pvnbot_commit_to_converged_seconds"), "staging converged once")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
}
