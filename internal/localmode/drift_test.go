package localmode_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/localmode"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// neverConverges applies fine, and fetch says drift for ever.
const neverConverges = `runtime:
  name: files
  custom:
    proxyRuntime: {runtime: local}
    apply:
      taskConfig: {program: {cmd: [sh, -c, "echo applied"]}}
    fetch:
      taskConfig: {program: {cmd: [sh, -c, "exit 2"]}}
      pollInterval: 0.02s
    convergenceGracePeriod: 0.1s
---
application:
  name: shop
  releaseChannels: [{name: staging, runtimes: [{runtime: files}]}]
---
service: {name: web, application: shop}
`

// bot run --once ends, failing and naming the target, once it has
// re-applied a target 3 times without it converging.
func TestRunOnceEndsOnEndlessDrift(t *testing.T) {
	repo := gitrepotest.New(t)
	repo.Write("all.pvn.yaml", neverConverges)
	repo.Commit("web")
	statePath := t.TempDir() + "/state.db"
	res, out, err := runOnce(repo.Dir, statePath, nil)
	require.NoError(t, err, out)
	assert.True(t, res.Failed, out)
	require.Len(t, res.States, 1)
	st := res.States[0]
	assert.Equal(t, store.StatusConverging, st.Status)
	assert.Equal(t, 3, st.Reapplies)
	assert.Contains(t, out, "shop/web/staging: re-applied 3 times and still drifting: --once stops here")
	assert.Contains(t, out, "still drifting after 4 applies; next apply at")
	db, err := store.OpenSQLiteReadOnly(context.Background(), statePath)
	require.NoError(t, err)
	defer db.Close()
	name, err := localmode.RepoName(repo.Dir)
	require.NoError(t, err)
	runs, err := db.RepoOf(name).RecentRuns(context.Background(), 0)
	require.NoError(t, err)
	applies := 0
	for _, r := range runs {
		if r.Action == runner.ActionApply {
			applies++
		}
	}
	assert.Equal(t, 4, applies, "the first apply and 3 re-applies")
}
