package localmode_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// batchConfigs is a runtime without fetch: a lost state would apply it
// again.
const batchConfigs = `runtime:
  name: once
  custom:
    proxyRuntime: {runtime: local}
    apply:
      taskConfig:
        program: {entrypoint: [sh, -c], cmd: ['echo "$PVN_SERVICE" >> "$E2E_STATE/batch-applies"']}
---
application:
  name: batch
  releaseChannels:
  - name: staging
    runtimes: [{runtime: once}]
---
service:
  name: migrate
  application: batch
`

// testdata/v3-state.db was written by bot run and bot approve of schema v3
// (commit 9f187b0), on the repository this test makes again (the same files
// and commit, so the same SHA), in a folder since removed:
//
//	bot run --repo DIR --once --pass-env E2E_STATE
//	bot approve --repo DIR --as alice shop production web
//
// Staging converged, batch/migrate/staging applied once (it has no fetch),
// production waits for approval and alice approved web's.
func TestResumesAStateFileOfSchemaV3(t *testing.T) {
	f := newShop(t)
	f.repo.Write("batch.pvn.yaml", batchConfigs)
	require.Equal(t, "c1031b3d22b620a5d71dca2922b741b74db2ea28", f.repo.Commit("shop and batch"))
	f.state = filepath.Join(f.repo.Dir, ".pvnbot", "pvnbot.db")
	fixture, err := os.ReadFile("testdata/v3-state.db")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(f.state), 0o700))
	require.NoError(t, os.WriteFile(f.state, fixture, 0o600))
	// What that bot run deployed.
	for name, v := range map[string]string{"api": "2.0", "web": "1.0", "worker": "3.0"} {
		require.NoError(t, os.MkdirAll(filepath.Join(f.deployed, "staging"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(f.deployed, "staging", name), []byte(v+"\n"), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(f.deployed, "batch-applies"), []byte("migrate\n"), 0o644))
	started := time.Now()

	out, errOut, code := f.bot("run", "--repo", f.repo.Dir, "--once", "--pass-env", "E2E_STATE")
	require.Equal(t, 0, code, out+errOut)
	assert.Contains(t, out, "the repository moved from /tmp/TestMakeV3Fixture", "the state of the folder it was written in carries over")
	assert.NotContains(t, out, "commit c1031b3d22b6: 7 targets", "the commit was ingested already")

	assert.Equal(t, []string{"web/production@c1031b3"}, f.appliesSince(started),
		"nothing re-applied; alice's approval, given before the upgrade, released web's production apply")
	batch, err := os.ReadFile(filepath.Join(f.deployed, "batch-applies"))
	require.NoError(t, err)
	assert.Equal(t, "migrate\n", string(batch), "the target without fetch was not applied again")
	assert.Equal(t, map[string]store.Status{
		"api/staging": store.StatusConverged, "web/staging": store.StatusConverged, "worker/staging": store.StatusConverged,
		"migrate/staging": store.StatusConverged, "web/production": store.StatusConverged,
		"api/production": store.StatusWaitingManualApproval, "worker/production": store.StatusWaitingManualApproval,
	}, f.statuses())

	runs, err := f.open().RecentRuns(t.Context(), 0)
	require.NoError(t, err)
	old := 0
	for _, r := range runs {
		if r.Started.Before(started) {
			old++
		}
		if r.Key.Service == "web" && r.Key.ReleaseChannel == "production" && r.Action == runner.ActionApply {
			assert.Equal(t, []string{"alice"}, r.ApprovedBy)
		}
	}
	assert.Equal(t, 13, old, "the audit log of schema v3 is kept")

	out, errOut, code = f.bot("status", "--repo", f.repo.Dir)
	require.Equal(t, 0, code, out+errOut)
	assert.True(t, strings.Contains(out, "5 converged, 2 waiting for manual approval"), out)
}
