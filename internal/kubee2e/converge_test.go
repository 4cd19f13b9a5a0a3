package kubee2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/runner/kube"
	"github.com/pvnbot/pvnbot/internal/store"
)

// demo writes an application "demo" with one channel "staging" on runtime
// rt and one service per name.
func (r *repo) demo(rt string, services ...string) {
	r.write("app.pvn.yaml", fmt.Sprintf(`application:
  name: demo
  releaseChannels:
  - name: staging
    runtimes:
    - runtime: %s
`, rt))
	for _, s := range services {
		r.write("services/"+s+".pvn.yaml", fmt.Sprintf("service:\n  name: %s\n  application: demo\n", s))
	}
}

// A fetch Job that exits 2 until the apply Job has written its file, then 0:
// the engine runs fetch, apply, fetch again and the target is CONVERGED.
// Every Job carries the labels of SPEC §4, which match the audit log.
func TestFetchDriftApplyConverges(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	work := t.TempDir()
	applied := filepath.Join(work, "applied")
	apply := script(t, work, "apply.sh", fmt.Sprintf(`echo "$PVN_ACTION $PVN_DESIRED_VERSION" > %q`+"\n", applied))
	fetch := script(t, work, "fetch.sh", fmt.Sprintf(`test -f %q || { echo "not applied yet"; exit 2; }`+"\n", applied))

	rt := runtimeName("drift")
	r := newRepo(t)
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
    fetch:
      taskConfig:
        program:
          image: example.org/tools:1
          entrypoint: [sh]
          cmd: [%q]
      pollInterval: 100ms
`, rt, cluster, apply, fetch))
	r.demo(rt, "shop")
	commit := commitOf(1)
	st := store.NewMemory().Repo(repoName)

	b := startBot(t, st, commit, r.targets(commit))
	states := b.rec.waitFor(t, "CONVERGED", allConverged(1))

	key := desired.Key{Application: "demo", Service: "shop", ReleaseChannel: "staging"}
	got := states[key]
	assert.Equal(t, commit, got.Target.Commit)
	assert.Equal(t, 0, got.LastFetch.ExitCode)
	assert.Equal(t, 0, got.LastApply.ExitCode)
	data, err := os.ReadFile(applied)
	require.NoError(t, err)
	assert.Equal(t, "apply "+commit+"\n", string(data), "the apply Job ran with the PVN_* environment")

	runs, err := st.Runs(ctx, key, 0)
	require.NoError(t, err)
	var actions []runner.Action
	runIDs := map[string]runner.Action{}
	for _, run := range runs {
		actions = append(actions, run.Action)
		runIDs[kube.LabelValue(run.ID)] = run.Action
	}
	// Newest first: the fetch that converged, the apply, the fetch that found drift.
	require.GreaterOrEqual(t, len(runs), 3, "audit log: %v", actions)
	assert.Equal(t, []runner.Action{runner.ActionFetch, runner.ActionApply}, actions[:2])
	assert.Equal(t, runner.ActionFetch, actions[len(actions)-1])
	assert.Equal(t, 2, runs[len(runs)-1].ExitCode, "the first fetch found drift")
	assert.Len(t, applyRuns(t, ctx, st, key), 1)

	jobs := jobsOf(t, ctx, rt)
	require.Len(t, jobs, len(runs), "one Job per run in the audit log")
	for _, job := range jobs {
		action, ok := runIDs[job.Labels[kube.LabelRunID]]
		require.True(t, ok, "job %s has run ID label %q, not in the audit log", job.Name, job.Labels[kube.LabelRunID])
		assert.Equal(t, map[string]string{
			kube.LabelManagedBy:      "pvnbot",
			kube.LabelService:        "shop",
			kube.LabelApplication:    "demo",
			kube.LabelReleaseChannel: "staging",
			kube.LabelRuntime:        rt,
			kube.LabelAction:         string(action),
			kube.LabelCommit:         commit,
			kube.LabelRunID:          job.Labels[kube.LabelRunID],
		}, job.Labels, "labels of job %s", job.Name)
		assert.True(t, strings.HasPrefix(job.Name, "shop-"+strings.ToLower(string(action))+"-"), "job name %s", job.Name)
		assert.Equal(t, kube.DefaultNamespace(rt), job.Namespace)
	}
	// The runner reads the pod's exit before the Job controller marks the
	// Job: it gets there soon after.
	require.Eventually(t, func() bool {
		return !slices.ContainsFunc(jobsOf(t, ctx, rt), func(j batchv1.Job) bool { return !finished(&j) })
	}, waitTimeout, 50*time.Millisecond, "every Job marked complete")
}
