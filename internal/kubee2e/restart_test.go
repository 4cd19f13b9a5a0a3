package kubee2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/kubetest"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/runner/kube"
	"github.com/pvnbot/pvnbot/internal/store"
)

// The bot dies while an apply Job runs (its Run is cancelled with
// runner.ErrDetached: the Job stays). A new bot over the same SQLite file
// and a new Kubernetes runner finds the Job by its run ID and awaits it:
// one apply Job, one process, one apply in the audit log, CONVERGED.
func TestRestartAwaitsTheSameJob(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	work := t.TempDir()
	starts := filepath.Join(work, "starts")
	gate := filepath.Join(work, "gate")
	apply := script(t, work, "apply.sh", fmt.Sprintf(`echo "$PVN_SERVICE" >> %q
while [ ! -e %q ]; do sleep 0.05; done
echo "applied"
`, starts, gate))

	rt := runtimeName("restart")
	r := newRepo(t)
	// No fetch: the new engine runs the apply again under the same run ID.
	r.write("runtimes/rt.pvn.yaml", fmt.Sprintf(`runtime:
  name: %s
  custom:
    type: GENERIC
    proxyRuntime:
      runtime: %s
    apply:
      taskConfig:
        program:
          image: example.org/tools:1
          entrypoint: [sh]
          cmd: [%q]
`, rt, cluster, apply))
	r.demo(rt, "shop")
	commit := commitOf(4)
	targets := r.targets(commit)
	key := desired.Key{Application: "demo", Service: "shop", ReleaseChannel: "staging"}
	dbPath := filepath.Join(t.TempDir(), "state.db")

	st1, err := store.OpenSQLite(ctx, dbPath)
	require.NoError(t, err)
	first := startBot(t, st1.Repo(repoName), commit, targets)
	ns := kube.DefaultNamespace(rt)
	pod := plane.UntilPod(t, ctx, ns, kube.LabelRuntime+"="+rt+","+kube.LabelAction+"=apply", kubetest.PodRunning)
	first.stop(t, runner.ErrDetached)
	require.NoError(t, st1.Close())

	jobs := jobsOf(t, ctx, rt, kube.LabelAction+"=apply")
	require.Len(t, jobs, 1, "the Job outlives the bot")
	require.False(t, finished(&jobs[0]))
	runID := jobs[0].Labels[kube.LabelRunID]

	st2, err := store.OpenSQLite(ctx, dbPath)
	require.NoError(t, err)
	t.Cleanup(func() { st2.Close() })
	repo2 := st2.Repo(repoName)
	before := applyRuns(t, ctx, repo2, key)
	require.Len(t, before, 1)
	assert.True(t, before[0].Finished.IsZero(), "the apply is recorded as started, not finished")
	assert.Equal(t, runID, kube.LabelValue(before[0].ID))

	second := startBot(t, repo2, commit, targets)
	require.NoError(t, os.WriteFile(gate, nil, 0o644))
	states := second.rec.waitFor(t, "CONVERGED after the restart", allConverged(1))

	assert.Equal(t, 0, states[key].LastApply.ExitCode)
	jobs = jobsOf(t, ctx, rt, kube.LabelAction+"=apply")
	require.Len(t, jobs, 1, "no second apply Job")
	assert.Equal(t, runID, jobs[0].Labels[kube.LabelRunID])
	assert.Equal(t, pod.Labels[kube.LabelRunID], runID)
	data, err := os.ReadFile(starts)
	require.NoError(t, err)
	assert.Equal(t, "shop\n", string(data), "the apply process started once")

	after := applyRuns(t, ctx, repo2, key)
	require.Len(t, after, 1, "one apply in the audit log")
	assert.Equal(t, before[0].ID, after[0].ID)
	assert.False(t, after[0].Finished.IsZero())
	assert.Equal(t, 0, after[0].ExitCode)
	assert.Contains(t, after[0].OutputTail, "applied")
	assert.True(t, strings.Contains(after[0].Note, "re-run"), "note: %q", after[0].Note)
}
