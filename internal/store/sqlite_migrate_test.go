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
	repo := s.RepoOf("") // nothing was ingested: the repository has no name
	got, err := repo.LoadTargets(ctx)
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
	require.NoError(t, repo.SaveTarget(ctx, next))
	got, err = repo.LoadTargets(ctx)
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
	_, err = s.db.ExecContext(ctx, `INSERT INTO desired_states VALUES ('r', 'a', 's', 'c', 'somewhere', '{}')`)
	require.NoError(t, err)
	_, err = s.db.ExecContext(ctx, `INSERT INTO targets
		(repo, application, service, release_channel, status, message, commit_sha, digest, data)
		VALUES ('r', 'a', 's', 'c', 'PENDING', '', 'c1', 'somewhere', '{}')`)
	require.NoError(t, err)
	_, err = s.db.ExecContext(ctx, `INSERT INTO targets
		(repo, application, service, release_channel, status, message, commit_sha, digest, data)
		VALUES ('other', 'a', 's', 'c', 'PENDING', '', 'c1', 'somewhere', '{}')`)
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
		// Version 2's columns: those of today but the repository.
		args, err := (&SQLiteRepo{}).runArgs("start", run)
		require.NoError(t, err)
		_, err = old.db.ExecContext(ctx, `INSERT INTO job_runs (`+runColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			append(args[:1:1], args[2:]...)...)
		require.NoError(t, err)
		want = append([]JobRun{run}, want...)
	}
	require.NoError(t, old.Close())

	file, err := OpenSQLite(ctx, path)
	require.NoError(t, err)
	defer file.Close()
	s := file.RepoOf("")
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
	rows, err := file.db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'job_runs' ORDER BY name`)
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

// A state file of schema v3 serves one repository, that of its ingest log:
// every record of it moves into that repository.
func TestSQLiteMigratesV3RecordsIntoTheirRepository(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	key := desired.Key{Application: "shop", Service: "api", ReleaseChannel: "production"}
	target := desired.Target{Key: key, Runtime: "vm", Commit: "c2", Digest: "d1", DesiredVersion: "c2"}
	st := TargetState{Target: target, Status: StatusWaitingManualApproval, Message: "waiting for approval: 1 of 2 approvers (alice)"}

	old := openAtVersion(t, path, 3)
	data, err := json.Marshal(stateRow{TargetState: st})
	require.NoError(t, err)
	desiredData, err := json.Marshal(target)
	require.NoError(t, err)
	for _, stmt := range []struct {
		q    string
		args []any
	}{
		{`INSERT INTO ingested_commits (repo, branch, sha, ingested_at) VALUES (?, 'main', 'c1', NULL), (?, 'main', 'c2', NULL)`,
			[]any{"/old/name", "/home/me/deploys"}},
		{`INSERT INTO desired_states VALUES ('shop', 'api', 'production', 'd1', ?)`, []any{string(desiredData)}},
		{`INSERT INTO targets VALUES ('shop', 'api', 'production', ?, ?, 'c2', 'd1', NULL, ?)`, []any{string(st.Status), st.Message, string(data)}},
		{`INSERT INTO job_runs (id, application, service, release_channel, action, commit_sha, digest, desired_version, error, output_tail, note)
			VALUES ('r1', 'shop', 'api', 'production', 'fetch', 'c2', 'd1', 'c2', '', '', '')`, nil},
		{`INSERT INTO approvals (application, service, release_channel, digest, commit_sha, who, at, consumed_by)
			VALUES ('shop', 'api', 'production', 'd1', 'c2', 'alice', ?, NULL)`, []any{dbTime(t0)}},
		{`INSERT INTO deliveries (id, event, payload) VALUES ('g1', 'push', '{}')`, nil},
	} {
		_, err := old.db.ExecContext(ctx, stmt.q, stmt.args...)
		require.NoError(t, err, stmt.q)
	}
	require.NoError(t, old.Close())

	s, err := OpenSQLite(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	repos, err := s.Repos(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"/home/me/deploys", "/old/name"}, repos, "the ingest log keeps its names")

	r := s.RepoOf("/home/me/deploys") // that of the latest ingested commit
	got, err := r.LoadTargets(ctx)
	require.NoError(t, err)
	assert.Equal(t, []TargetState{st}, got)
	run, err := r.Run(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, runner.ActionFetch, run.Action)
	approvals, err := r.CurrentApprovals(ctx)
	require.NoError(t, err)
	assert.Equal(t, []Approval{{ID: "v3-1", Key: key, Digest: "d1", Commit: "c2", Who: "alice", At: t0}}, approvals)
	sha, _, err := r.LastIngested(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, "c2", sha)

	// The migrated file is written to as usual, foreign key included.
	st.Status = StatusConverged
	require.NoError(t, r.Save(ctx, Batch{States: []TargetState{st}, Approvals: []Approval{{ID: "new", Key: key, Digest: "d1", Commit: "c2", Who: "bob", At: t0}}}))
	approvals, err = r.CurrentApprovals(ctx)
	require.NoError(t, err)
	assert.Len(t, approvals, 2)
	_, err = s.db.ExecContext(ctx, `UPDATE targets SET digest = 'nowhere'`)
	assert.True(t, isForeignKeyError(err), "the foreign key survived the renames: %v", err)
	empty, err := s.RepoOf("/old/name").LoadTargets(ctx)
	require.NoError(t, err)
	assert.Empty(t, empty)
}

func TestSQLiteRenameRepo(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	defer s.Close()
	key := desired.Key{Application: "shop", Service: "api", ReleaseChannel: "production"}
	st := TargetState{Target: desired.Target{Key: key, Commit: "c1", Digest: "d1"}, Status: StatusConverged}
	old := s.RepoOf("/old/place")
	require.NoError(t, old.Save(ctx, Batch{
		States:    []TargetState{st},
		Runs:      []JobRun{{ID: "r1", Key: key, Action: runner.ActionApply}},
		Approvals: []Approval{{ID: "a1", Key: key, Digest: "d1", Commit: "c1", Who: "alice"}},
	}))
	_, err = old.IngestCommit(ctx, "main", "c1", "")
	require.NoError(t, err)
	claimed, err := s.ClaimReply(ctx, "/old/place", 7, time.Now())
	require.NoError(t, err)
	require.True(t, claimed)

	require.NoError(t, s.RenameRepo(ctx, "/old/place", "/new/place"))
	claimed, err = s.ClaimReply(ctx, "/new/place", 7, time.Now())
	require.NoError(t, err)
	assert.False(t, claimed, "the comments answered move too")
	repos, err := s.Repos(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"/new/place"}, repos)
	moved := s.RepoOf("/new/place")
	got, err := moved.LoadTargets(ctx)
	require.NoError(t, err)
	assert.Equal(t, []TargetState{st}, got)
	_, err = moved.Run(ctx, "r1")
	require.NoError(t, err)
	approvals, err := moved.CurrentApprovals(ctx)
	require.NoError(t, err)
	assert.Len(t, approvals, 1)
	sha, _, err := moved.LastIngested(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, "c1", sha)
	st.Status = StatusFailed
	require.NoError(t, moved.SaveTarget(ctx, st), "saved as usual afterwards")

	require.NoError(t, s.RepoOf("/third").SaveTarget(ctx, st))
	assert.ErrorContains(t, s.RenameRepo(ctx, "/new/place", "/third"), "has records already")
}
