package store

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// openAtVersion creates a state file whose schema is at version v.
func openAtVersion(t *testing.T, path string, v int) *SQLite {
	t.Helper()
	known := migrations
	migrations = known[:v]
	defer func() { migrations = known }()
	s, err := OpenSQLite(context.Background(), path)
	require.NoError(t, err)
	return s
}

func TestSQLiteMigratesTargetsWrittenWholeToDesiredStates(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	target := func(service, digest string) desired.Target {
		return desired.Target{
			Key:     desired.Key{Application: "shop", Service: service, ReleaseChannel: "production"},
			Runtime: "vm", Commit: "c1", Digest: digest, DesiredVersion: "c1",
			Apply: runner.Spec{
				Action: runner.ActionApply, Cmd: []string{"deploy", "<&> é \u2028 \"q\""},
				Timeout: 5 * time.Minute, Manifest: []byte{0, 1, 2, 255},
			},
			Policy:        desired.Policy{FetchPollInterval: 30 * time.Second},
			Preconditions: []desired.Precondition{{ReleaseChannelStable: "staging"}},
			Params:        map[string]string{"big": "12345678901234567890", "empty": ""},
		}
	}
	want := []TargetState{
		{Target: target("api", "d1"), Status: StatusConverged, UpdatedAt: t0, LatestSeq: 4, Info: []InfoOutput{{Name: "URL", Text: "https://x"}}},
		{Target: target("web", "d2"), Status: StatusFailed, Message: "exit 3", Attempts: 2, NextDue: t0.Add(time.Minute)},
	}

	// Version 1 kept the whole TargetState as JSON in targets.data.
	old := openAtVersion(t, path, 1)
	for _, st := range want {
		data, err := json.Marshal(st)
		require.NoError(t, err)
		_, err = old.db.ExecContext(ctx, `INSERT INTO targets
			(application, service, release_channel, status, message, commit_sha, digest, updated_at, data)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			st.Target.Application, st.Target.Service, st.Target.ReleaseChannel, string(st.Status), st.Message,
			st.Target.Commit, st.Target.Digest, dbTime(st.UpdatedAt), string(data))
		require.NoError(t, err)
	}
	require.NoError(t, old.Close())

	s, err := OpenSQLite(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	got, err := s.LoadTargets(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, want, got)

	var version, desiredRows, whole int
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version))
	assert.Equal(t, SchemaVersion(), version)
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT count(*) FROM desired_states`).Scan(&desiredRows))
	assert.Equal(t, 2, desiredRows)
	require.NoError(t, s.db.QueryRowContext(ctx,
		`SELECT count(*) FROM targets WHERE json_extract(data, '$.Target') IS NOT NULL`).Scan(&whole))
	assert.Zero(t, whole, "the desired states left the targets' rows")

	// The migrated file is saved to as usual.
	next := want[0]
	next.Target = target("api", "d3")
	require.NoError(t, s.SaveTarget(ctx, next))
	got, err = s.LoadTargets(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []TargetState{next, want[1]}, got)
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT count(*) FROM desired_states`).Scan(&desiredRows))
	assert.Equal(t, 2, desiredRows, "d1 is pruned")
}

func TestSQLiteForeignKeysHold(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	defer s.Close()
	_, err = s.db.ExecContext(ctx, `INSERT INTO targets
		(application, service, release_channel, status, message, commit_sha, digest, data)
		VALUES ('a', 's', 'c', 'PENDING', '', 'c1', 'nowhere', '{}')`)
	require.Error(t, err, "a target cannot point at a desired state that is not stored")
	assert.True(t, isForeignKeyError(err), "got %v", err)
}

func TestSQLiteMigratesJobRunsKeepingTheirOrder(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	key := desired.Key{Application: "shop", Service: "api", ReleaseChannel: "production"}
	var want []JobRun // newest first
	old := openAtVersion(t, path, 2)
	for i, id := range []string{"z", "m", "a"} {
		run := JobRun{
			ID: id, Key: key, Action: runner.ActionApply, Commit: "c1", Digest: "d1", DesiredVersion: "v1",
			Started: t0, Finished: t0.Add(time.Duration(i) * time.Second), ExitCode: i, Error: "e",
			OutputTail: "out", ApprovedBy: []string{"alice"}, Note: "n",
		}
		require.NoError(t, old.StartRun(ctx, run))
		want = append([]JobRun{run}, want...)
	}
	require.NoError(t, old.Close())

	s, err := OpenSQLite(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	next := JobRun{ID: "b", Key: key, Action: runner.ActionFetch, Started: t0}
	require.NoError(t, s.StartRun(ctx, next))
	want = append([]JobRun{next}, want...)

	runs, err := s.Runs(ctx, key, 0)
	require.NoError(t, err)
	assert.Equal(t, want, runs, "same start: newest inserted first, old runs before new ones")
	runs, err = s.RecentRuns(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, want, runs)
	got, err := s.Run(ctx, "m")
	require.NoError(t, err)
	assert.Equal(t, want[2], got)

	var indexes []string
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'job_runs' ORDER BY name`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		indexes = append(indexes, name)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []string{"job_runs_by_target", "sqlite_autoindex_job_runs_1"}, indexes)
}
