package localmode_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// crashRepo has two runtimes: "checked" with fetch (a restart lets fetch
// decide about an apply whose result was lost) and "blind" without (the
// apply runs again, unless its success was recorded). A bot killed after
// recording an apply and before it ended leaves fetch reporting drift: the
// apply runs again at once, without waiting for the convergence grace period
// (default here, 10 minutes), as the apply never reported. Every job writes
// "start" and "end" lines to the fifo $E2E_EVENTS: the test counts them to
// kill the bot at a chosen point.
const crashConfigs = `runtime:
  name: checked
  custom:
    proxyRuntime: {runtime: local}
    apply:
      taskConfig: {program: {entrypoint: [sh], cmd: [scripts/job.sh, apply, "{{.Params.version}}"]}}
    fetch:
      taskConfig: {program: {entrypoint: [sh], cmd: [scripts/job.sh, fetch, "{{.Params.version}}"]}}
      pollInterval: 0.1s
      steadyStatePollInterval: 1h
    parameters: [{name: version, string: {defaultValue: "1"}}]
---
runtime:
  name: blind
  custom:
    proxyRuntime: {runtime: local}
    apply:
      taskConfig: {program: {entrypoint: [sh], cmd: [scripts/job.sh, apply, "{{.Params.version}}"]}}
    parameters: [{name: version, string: {defaultValue: "1"}}]
---
application:
  name: app
  releaseChannels:
  - name: staging
    runtimes: [{runtime: checked}, {runtime: blind}]
  - name: production
    runtimes: [{runtime: checked}, {runtime: blind}]
    preconditions: [{releaseChannelStable: {releaseChannel: staging}}]
---
service: {name: a, application: app, runtimeConnection: checked}
---
service: {name: b, application: app, runtimeConnection: checked}
---
service: {name: c, application: app, runtimeConnection: blind}
---
service: {name: d, application: app, runtimeConnection: blind}
`

// job.sh ACTION VERSION. Opening the fifo read-write never blocks, even
// for a job left running by a killed bot after the test stopped reading.
const crashJob = `set -eu
event() { echo "$1 $PVN_ACTION $PVN_SERVICE/$PVN_RELEASE_CHANNEL" 1<>"$E2E_EVENTS"; }
event start
f="$E2E_STATE/$PVN_RELEASE_CHANNEL/$PVN_SERVICE"
case "$1" in
apply)
  mkdir -p "$E2E_STATE/$PVN_RELEASE_CHANNEL"
  echo "$2" > "$f.$$" && mv "$f.$$" "$f"
  event end ;;
fetch)
  event end
  if [ -f "$f" ] && [ "$(cat "$f")" = "$2" ]; then exit 0; fi
  exit 2 ;;
esac
`

// crashEvents is how many job lines a run from scratch writes: a and b
// fetch, apply and fetch again, c and d apply, in two channels.
const crashEvents = 2 * (2*3 + 2*1) * 2

// TestCrashAnywhereThenRestart kills `bot run` with SIGKILL at 20 points of
// a run, spread over its job starts and ends, then runs it again: every
// target ends converged, and no desired state is applied again once its
// success was recorded.
func TestCrashAnywhereThenRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the bot 20 times")
	}
	const points = 20
	for i := range points {
		n := 1 + i*(crashEvents-1)/(points-1)
		t.Run(fmt.Sprintf("kill after event %d of %d", n, crashEvents), func(t *testing.T) {
			crashAt(t, n)
		})
	}
}

func crashAt(t *testing.T, n int) {
	repo := gitrepotest.New(t)
	repo.Write("app.pvn.yaml", crashConfigs)
	repo.Write("scripts/job.sh", crashJob)
	repo.Commit("four services")
	dir := t.TempDir()
	state, deployed, fifo := filepath.Join(dir, "state.db"), filepath.Join(dir, "deployed"), filepath.Join(dir, "events")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	events, err := os.OpenFile(fifo, os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { events.Close() })
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(events)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bot := func() *exec.Cmd {
		cmd := exec.CommandContext(ctx, botBin, "run", "--repo", repo.Dir, "--state", state, "--once",
			"--pass-env", "E2E_STATE", "--pass-env", "E2E_EVENTS")
		cmd.Env = append(os.Environ(), "E2E_STATE="+deployed, "E2E_EVENTS="+fifo)
		return cmd
	}

	first := bot()
	require.NoError(t, first.Start())
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	var seen []string
	for len(seen) < n {
		select {
		case line := <-lines:
			seen = append(seen, line)
		case err := <-exited:
			t.Fatalf("bot run ended (%v) after %d events, before the kill point %d: %q", err, len(seen), n, seen)
		}
	}
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	<-exited
	t.Logf("killed after %q", seen[len(seen)-1])

	drain := make(chan struct{})
	defer close(drain)
	go func() {
		for {
			select {
			case <-lines:
			case <-drain:
				return
			}
		}
	}()
	second := bot()
	out, err := second.CombinedOutput()
	require.NoError(t, err, "bot run after the crash:\n%s", out)

	db, err := store.OpenSQLite(context.Background(), state)
	require.NoError(t, err)
	defer db.Close()
	repos, err := db.Repos(context.Background())
	require.NoError(t, err)
	require.Len(t, repos, 1)
	st := db.RepoOf(repos[0])
	states, err := st.LoadTargets(context.Background())
	require.NoError(t, err)
	require.Len(t, states, 8)
	for _, s := range states {
		assert.Equal(t, store.StatusConverged, s.Status, "%s: %s\n%s", s.Key(), s.Message, out)
	}
	runs, err := st.RecentRuns(context.Background(), 0)
	require.NoError(t, err)
	assert.Empty(t, appliedAfterRecordedSuccess(runs), "audit log:\n%s", auditLog(runs))
}

// appliedAfterRecordedSuccess lists the applies started after an apply of
// the same desired state (target and digest) had its success recorded.
func appliedAfterRecordedSuccess(runs []store.JobRun) []string {
	type desiredState struct {
		key    desired.Key
		digest string
	}
	applies := map[desiredState][]store.JobRun{}
	for _, r := range runs {
		if r.Action == runner.ActionApply {
			ds := desiredState{r.Key, r.Digest}
			applies[ds] = append(applies[ds], r)
		}
	}
	var bad []string
	for ds, rs := range applies {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Started.Before(rs[j].Started) })
		for i, r := range rs {
			if r.Finished.IsZero() || r.ExitCode != 0 || r.Error != "" {
				continue
			}
			for _, later := range rs[i+1:] {
				if later.ID != r.ID && later.Started.After(r.Finished) {
					bad = append(bad, fmt.Sprintf("%s: run %s started %s after run %s succeeded at %s",
						ds.key, later.ID, later.Started.Format("15:04:05.000"), r.ID, r.Finished.Format("15:04:05.000")))
				}
			}
			break
		}
	}
	return bad
}

func auditLog(runs []store.JobRun) string {
	var s string
	for _, r := range runs {
		s += fmt.Sprintf("%s %-8s %-16s exit %d started %s finished %s %s %s\n", r.ID[:8], r.Action, r.Key,
			r.ExitCode, r.Started.Format("15:04:05.000"), r.Finished.Format("15:04:05.000"), r.Error, r.Note)
	}
	return s
}

func TestAppliedAfterRecordedSuccess(t *testing.T) {
	key := desired.Key{Application: "app", Service: "a", ReleaseChannel: "staging"}
	at := func(s int) time.Time { return time.Date(2025, 1, 1, 12, 0, s, 0, time.UTC) }
	apply := func(id, digest string, started, finished, exit int) store.JobRun {
		r := store.JobRun{ID: id, Key: key, Action: runner.ActionApply, Digest: digest, Started: at(started), ExitCode: exit}
		if finished > 0 {
			r.Finished = at(finished)
		}
		return r
	}
	tests := map[string]struct {
		runs []store.JobRun
		bad  int
	}{
		"one success":                            {[]store.JobRun{apply("1", "d1", 1, 2, 0)}, 0},
		"lost result, then re-run":               {[]store.JobRun{apply("1", "d1", 1, 0, 0), apply("2", "d1", 5, 6, 0)}, 0},
		"failure, then retry":                    {[]store.JobRun{apply("1", "d1", 1, 2, 1), apply("2", "d1", 5, 6, 0)}, 0},
		"same run ID resumed":                    {[]store.JobRun{apply("1", "d1", 1, 2, 0), apply("1", "d1", 3, 4, 0)}, 0},
		"new desired state applies again":        {[]store.JobRun{apply("1", "d1", 1, 2, 0), apply("2", "d2", 5, 6, 0)}, 0},
		"applied again after a recorded success": {[]store.JobRun{apply("1", "d1", 1, 2, 0), apply("2", "d1", 5, 6, 0)}, 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Len(t, appliedAfterRecordedSuccess(tc.runs), tc.bad)
		})
	}
}
