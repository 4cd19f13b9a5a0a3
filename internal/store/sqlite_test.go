package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
	"github.com/pvnbot/pvnbot/internal/store/storetest"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.DB {
		s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "state.db"))
		require.NoError(t, err)
		return s
	})
}

// repoFile is a state file and the repository storetest.Repo in it, which
// is what most tests need.
type repoFile struct {
	*store.SQLite
	*store.SQLiteRepo
}

// openSQLite opens path and closes it when the test ends.
func openSQLite(t testing.TB, path string, opts ...store.SQLiteOption) repoFile {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), path, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return repoFile{s, s.RepoOf(storetest.Repo)}
}

// rawDB opens the file the way someone with sqlite3 would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	dsn := url.URL{Scheme: "file", Path: path, RawQuery: "_busy_timeout=5000"}
	db, err := sql.Open("sqlite", dsn.String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestSQLiteReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	file, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	s := file.RepoOf(storetest.Repo)

	st := storetest.FullState(storetest.Key, "d1")
	run := store.JobRun{
		ID: "r1", Key: storetest.Key, Action: runner.ActionApply, Commit: "c1", Digest: "d1",
		Started: t0, Finished: t0.Add(time.Second), ExitCode: 1, OutputTail: "out", ApprovedBy: []string{"alice"},
	}
	approval := store.Approval{ID: "a1", Key: storetest.Key, Digest: "d1", Commit: "c1", Who: "alice", At: t0, Source: "cli", ConsumedBy: "r1"}
	require.NoError(t, s.SaveTarget(ctx, st))
	require.NoError(t, s.StartRun(ctx, run))
	require.NoError(t, s.AddApproval(ctx, approval))
	seq, err := s.IngestCommit(ctx, "main", "c1", "")
	require.NoError(t, err)
	_, err = file.RecordDelivery(ctx, store.Delivery{ID: "dlv-1", Event: "push", Repo: storetest.Repo, Payload: []byte(`{}`), ReceivedAt: t0})
	require.NoError(t, err)
	require.NoError(t, file.Close())

	r := openSQLite(t, path)
	targets, err := r.LoadTargets(ctx)
	require.NoError(t, err)
	assert.Equal(t, []store.TargetState{st}, targets)
	gotRun, err := r.Run(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, run, gotRun)
	approvals, err := r.Approvals(ctx, storetest.Key, "d1")
	require.NoError(t, err)
	assert.Equal(t, []store.Approval{approval}, approvals)
	sha, gotSeq, err := r.LastIngested(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, "c1", sha)
	assert.Equal(t, seq, gotSeq)
	pending, err := r.PendingDeliveries(ctx)
	require.NoError(t, err)
	assert.Equal(t, []store.Delivery{{ID: "dlv-1", Event: "push", Repo: storetest.Repo, Payload: []byte(`{}`), ReceivedAt: t0}}, pending)
}

func TestSQLiteOpen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo", ".pvnbot")
	path := filepath.Join(dir, "state?#1.db")
	s := openSQLite(t, path)
	assert.Equal(t, path, s.SQLite.Path())

	info, err := os.Stat(path)
	require.NoError(t, err, "the file is where it was asked, '?' and '#' included")
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the file holds secret parameter values")
	info, err = os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())

	var mode string
	require.NoError(t, rawDB(t, path).QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode))
	assert.Equal(t, "wal", mode)
}

func TestSQLiteOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	garbage := filepath.Join(dir, "garbage.db")
	require.NoError(t, os.WriteFile(garbage, []byte("not a database, just some text that is long enough......................................................."), 0o600))

	tests := map[string]struct {
		path string
	}{
		"folder is a file":       {path: filepath.Join(file, "state.db")},
		"file is not a database": {path: garbage},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := store.OpenSQLite(context.Background(), tt.path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.path, "the error names the path")
		})
	}
}

func TestSQLiteCancelledContext(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "state.db"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.SaveTarget(ctx, storetest.FullState(storetest.Key, "d1"))
	require.ErrorIs(t, err, context.Canceled)
	targets, err := s.LoadTargets(context.Background())
	require.NoError(t, err)
	assert.Empty(t, targets, "nothing was written")
}

func TestSQLiteMigrationsAreIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.Repo(storetest.Repo).SaveTarget(ctx, storetest.FullState(storetest.Key, "d1")))
	require.NoError(t, s.Close())

	for range 2 {
		s, err := store.OpenSQLite(ctx, path)
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}

	db := rawDB(t, path)
	var rows, version int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*), max(version) FROM schema_version`).Scan(&rows, &version))
	assert.Equal(t, 1, rows)
	assert.Equal(t, store.SchemaVersion(), version)
	var targets int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM targets`).Scan(&targets))
	assert.Equal(t, 1, targets, "reopening keeps the data")
}

func TestSQLiteRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	newer := store.SchemaVersion() + 1
	_, err = rawDB(t, path).ExecContext(ctx, `UPDATE schema_version SET version = ?`, newer)
	require.NoError(t, err)

	_, err = store.OpenSQLite(ctx, path)
	require.ErrorIs(t, err, store.ErrSchemaTooNew)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), fmt.Sprintf("version %d", newer))

	var version int
	require.NoError(t, rawDB(t, path).QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version))
	assert.Equal(t, newer, version, "a refused file is left as it was")
}

func TestSQLiteDeliveries(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path)
	record := func(id, event string, payload string, at time.Time) bool {
		t.Helper()
		isNew, err := s.RecordDelivery(ctx, store.Delivery{ID: id, Event: event, Repo: "acme/deploys", Payload: []byte(payload), ReceivedAt: at})
		require.NoError(t, err)
		return isNew
	}
	assert.True(t, record("b", "push", "first", t0.Add(time.Second)))
	assert.True(t, record("a", "issue_comment", "other", t0))
	assert.True(t, record("c", "push", "third", t0.Add(2*time.Second)))
	assert.False(t, record("b", "push", "redelivered", t0.Add(time.Hour)), "a delivery ID seen before is not new")

	pending, err := s.PendingDeliveries(ctx)
	require.NoError(t, err)
	assert.Equal(t, []store.Delivery{
		{ID: "a", Event: "issue_comment", Repo: "acme/deploys", Payload: []byte("other"), ReceivedAt: t0},
		{ID: "b", Event: "push", Repo: "acme/deploys", Payload: []byte("first"), ReceivedAt: t0.Add(time.Second)},
		{ID: "c", Event: "push", Repo: "acme/deploys", Payload: []byte("third"), ReceivedAt: t0.Add(2 * time.Second)},
	}, pending, "oldest first; the redelivery changed nothing")

	require.NoError(t, s.DeliveryDone(ctx, "a", t0.Add(time.Minute)))
	require.NoError(t, s.DeliveryFailed(ctx, "b", t0.Add(time.Minute), "fetch: connection refused", t0.Add(2*time.Minute)))
	require.NoError(t, s.DeliveryFailed(ctx, "c", t0.Add(time.Minute), "bad payload", time.Time{}))
	pending, err = s.PendingDeliveries(ctx)
	require.NoError(t, err)
	assert.Equal(t, []store.Delivery{{
		ID: "b", Event: "push", Repo: "acme/deploys", Payload: []byte("first"), ReceivedAt: t0.Add(time.Second),
		Attempts: 1, LastError: "fetch: connection refused", NextAttempt: t0.Add(2 * time.Minute),
	}}, pending, "a failed attempt stays pending, with when to try again; given up is not pending")
	counts, err := s.CountDeliveries(ctx)
	require.NoError(t, err)
	assert.Equal(t, store.DeliveryCounts{Pending: 1, Failed: 1, OldestPending: t0.Add(time.Second)}, counts)
	assert.ErrorIs(t, s.DeliveryDone(ctx, "a", t0), store.ErrNotFound, "done once")

	var status, processedAt, errMsg string
	require.NoError(t, rawDB(t, path).QueryRowContext(ctx,
		`SELECT status, processed_at, error FROM deliveries WHERE id = 'c'`).Scan(&status, &processedAt, &errMsg))
	assert.Equal(t, "failed", status)
	assert.Equal(t, "2026-03-04T05:07:07.000000008Z", processedAt)
	assert.Equal(t, "bad payload", errMsg)

	known, err := s.KnownDeliveries(ctx, []string{"a", "b", "z"})
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{"a": true, "b": true}, known)

	pruned, err := s.PruneDeliveries(ctx, t0.Add(time.Minute))
	require.NoError(t, err)
	assert.Zero(t, pruned, "processed at the cut-off: kept")
	pruned, err = s.PruneDeliveries(ctx, t0.Add(48*time.Hour))
	require.NoError(t, err)
	assert.EqualValues(t, 2, pruned, "the done and the given-up deliveries go; the pending one stays")
	assert.True(t, record("a", "issue_comment", "other", t0), "a pruned delivery is forgotten")

	assert.ErrorIs(t, s.DeliveryDone(ctx, "nope", t0), store.ErrNotFound)
	_, err = s.RecordDelivery(ctx, store.Delivery{Event: "push"})
	assert.Error(t, err)
}

func TestSQLiteIngestCursor(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	file, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	s := file.RepoOf("repo")

	_, _, err = s.LastIngested(ctx, "main")
	require.ErrorIs(t, err, store.ErrNotFound)

	var seqs []int64
	for _, sha := range []string{"c1", "c2", "c3"} {
		seq, err := s.IngestCommit(ctx, "main", sha, "")
		require.NoError(t, err)
		seqs = append(seqs, seq)
	}
	assert.IsIncreasing(t, seqs)

	again, err := s.IngestCommit(ctx, "main", "c2", "")
	require.NoError(t, err)
	assert.Equal(t, seqs[1], again, "ingesting a sha again returns its sequence")
	sha, seq, err := s.LastIngested(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, "c3", sha, "re-ingesting an older sha does not move the cursor")
	assert.Equal(t, seqs[2], seq)

	other, err := s.IngestCommit(ctx, "release", "c2", "")
	require.NoError(t, err)
	assert.Greater(t, other, seqs[2], "the same sha on another branch is another ingestion")
	sha, _, err = s.LastIngested(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, "c3", sha, "branches have their own cursor")
	require.NoError(t, file.Close())

	s = openSQLite(t, path).RepoOf("repo")
	next, err := s.IngestCommit(ctx, "main", "c4", "")
	require.NoError(t, err)
	assert.Greater(t, next, other, "sequences keep increasing after a reopen")
}

func TestSQLiteIngestRecordsTime(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path, store.WithClock(func() time.Time { return t0.In(time.FixedZone("X", 3600)) }))
	_, err := s.IngestCommit(ctx, "main", "c1", "")
	require.NoError(t, err)
	var at string
	require.NoError(t, rawDB(t, path).QueryRowContext(ctx, `SELECT ingested_at FROM ingested_commits`).Scan(&at))
	assert.Equal(t, "2026-03-04T05:06:07.000000008Z", at)
}

func TestSQLiteRecentRuns(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t, filepath.Join(t.TempDir(), "state.db"))
	web := storetest.Key
	web.Service = "web"
	for i, r := range []struct {
		id  string
		key desired.Key
	}{{"a", storetest.Key}, {"b", web}, {"c", storetest.Key}} {
		require.NoError(t, s.StartRun(ctx, store.JobRun{ID: r.id, Key: r.key, Action: runner.ActionFetch, Started: t0.Add(time.Duration(i) * time.Second)}))
	}
	require.NoError(t, s.StartRun(ctx, store.JobRun{ID: "d", Key: web, Action: runner.ActionApply, Started: t0.Add(2 * time.Second)}))

	tests := map[string]struct {
		limit int
		want  []string
	}{
		"all":           {limit: 0, want: []string{"d", "c", "b", "a"}},
		"negative: all": {limit: -1, want: []string{"d", "c", "b", "a"}},
		"limited":       {limit: 2, want: []string{"d", "c"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			runs, err := s.RecentRuns(ctx, tt.limit)
			require.NoError(t, err)
			var got []string
			for _, r := range runs {
				got = append(got, r.ID)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSQLiteRunRoundTrip(t *testing.T) {
	ctx := context.Background()
	zone := time.FixedZone("CET", 3600)
	tests := map[string]struct {
		run  store.JobRun
		want store.JobRun // zero: run
	}{
		"running, no approvers": {run: store.JobRun{ID: "1", Key: storetest.Key, Action: runner.ActionApply, Started: t0}},
		"empty approvers stay empty": {run: store.JobRun{
			ID: "2", Key: storetest.Key, Action: runner.ActionApply, Started: t0, ApprovedBy: []string{},
		}},
		"exit code without a finish time": {run: store.JobRun{ID: "3", Key: storetest.Key, Started: t0, ExitCode: 4}},
		"times come back in UTC": {
			run:  store.JobRun{ID: "4", Key: storetest.Key, Started: t0.In(zone), Finished: t0.Add(time.Nanosecond).In(zone)},
			want: store.JobRun{ID: "4", Key: storetest.Key, Started: t0, Finished: t0.Add(time.Nanosecond)},
		},
		"zero start": {run: store.JobRun{ID: "5", Key: storetest.Key, Finished: t0}},
	}
	s := openSQLite(t, filepath.Join(t.TempDir(), "state.db"))
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, s.StartRun(ctx, tt.run))
			got, err := s.Run(ctx, tt.run.ID)
			require.NoError(t, err)
			want := tt.want
			if want.ID == "" {
				want = tt.run
			}
			assert.Equal(t, want, got)
		})
	}
}

// TestSQLiteAuditLogReadsInSQL checks the columns people query with sqlite3.
func TestSQLiteAuditLogReadsInSQL(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path)
	run := store.JobRun{ID: "r1", Key: storetest.Key, Action: runner.ActionApply, Commit: "c1", Started: t0, ApprovedBy: []string{"alice", "bob"}}
	require.NoError(t, s.StartRun(ctx, run))
	st := storetest.FullState(storetest.Key, "d1")
	st.Status = store.StatusWaitingManualApproval
	require.NoError(t, s.SaveTarget(ctx, st))

	db := rawDB(t, path)
	var exitCode sql.NullInt64
	var started, approvers string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT exit_code, started,
		(SELECT group_concat(value, ',') FROM json_each(approved_by))
		FROM job_runs WHERE service = 'api' AND action = 'apply' AND finished IS NULL`).Scan(&exitCode, &started, &approvers))
	assert.False(t, exitCode.Valid, "a running job has no exit code")
	assert.Equal(t, "2026-03-04T05:06:07.000000008Z", started)
	assert.Equal(t, "alice,bob", approvers)

	run.Finished, run.ExitCode = t0.Add(time.Minute), 0
	require.NoError(t, s.FinishRun(ctx, run))
	require.NoError(t, db.QueryRowContext(ctx, `SELECT exit_code FROM job_runs WHERE id = 'r1'`).Scan(&exitCode))
	assert.Equal(t, sql.NullInt64{Int64: 0, Valid: true}, exitCode, "a finished job's exit code 0 is recorded")

	var status, commit string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT status, commit_sha FROM targets
		WHERE application = 'my-app' AND release_channel = 'production'`).Scan(&status, &commit))
	assert.Equal(t, "WAITING_MANUAL_APPROVAL", status)
	assert.Equal(t, "c0ffee", commit)
}

func TestSQLiteRejectsEmptyIDs(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t, filepath.Join(t.TempDir(), "state.db"))
	assert.Error(t, s.StartRun(ctx, store.JobRun{Key: storetest.Key}))
	assert.Error(t, s.FinishRun(ctx, store.JobRun{Key: storetest.Key}))
	assert.Error(t, s.AddApproval(ctx, store.Approval{Key: storetest.Key, Digest: "d1", Who: "alice"}))
	_, err := s.IngestCommit(ctx, "main", "", "")
	assert.Error(t, err)
}

func TestSQLiteSparseStateRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path)
	tests := map[string]store.TargetState{
		"new desired state": {Target: storetest.FullTarget(storetest.Key, "d1"), DesiredSeq: 1, LatestSeq: 1, Status: store.StatusPending},
		"empty, not nil, info": {
			Target: storetest.FullTarget(storetest.Key, "d1"), Status: store.StatusConverged,
			LastApply: store.Outcome{RunID: "r1", Finished: t0}, Info: []store.InfoOutput{},
		},
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, s.Save(ctx, store.Batch{States: []store.TargetState{want}}))
			got, err := s.LoadTargets(ctx)
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, want, got[0])

			var data string
			require.NoError(t, rawDB(t, path).QueryRowContext(ctx, `SELECT data FROM targets`).Scan(&data))
			assert.NotContains(t, data, "0001-01-01", "zero times are left out")
			assert.NotContains(t, data, `"Running"`, "zero records are left out")
		})
	}
}

func TestSQLiteLoadsStatesWrittenInFull(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path)
	want := store.TargetState{Target: storetest.FullTarget(storetest.Key, "d1"), Status: store.StatusPending}
	require.NoError(t, s.SaveTarget(ctx, want))
	// Before zero fields were left out, every field was written.
	full := `{"Target":` + targetJSON(t, want.Target) + `,"DesiredSeq":0,"LatestSeq":0,"Status":"PENDING","Message":"",` +
		`"UpdatedAt":"0001-01-01T00:00:00Z","NextDue":"0001-01-01T00:00:00Z","NextInfoDue":"0001-01-01T00:00:00Z",` +
		`"ApplyStartedAt":"0001-01-01T00:00:00Z","AppliedDigest":"","LastAppliedID":"","Attempts":0,"FetchFailures":0,"QueueSeq":0,` +
		`"Running":{"RunID":"","Action":"","Digest":"","Started":"0001-01-01T00:00:00Z"},` +
		`"LastFetch":{"RunID":"","Commit":"","Started":"0001-01-01T00:00:00Z","Finished":"0001-01-01T00:00:00Z","ExitCode":0,"Error":""},` +
		`"LastApply":{"RunID":"","Commit":"","Started":"0001-01-01T00:00:00Z","Finished":"0001-01-01T00:00:00Z","ExitCode":0,"Error":""},` +
		`"LastGetInfo":{"RunID":"","Commit":"","Started":"0001-01-01T00:00:00Z","Finished":"0001-01-01T00:00:00Z","ExitCode":0,"Error":""},` +
		`"Info":null,"InfoAt":"0001-01-01T00:00:00Z","Replaced":{"Commit":"","Digest":"","Status":"","At":"0001-01-01T00:00:00Z"}}`
	_, err := rawDB(t, path).ExecContext(ctx, `UPDATE targets SET data = ?`, full)
	require.NoError(t, err)

	got, err := s.LoadTargets(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, want, got[0])
}

func targetJSON(t *testing.T, target desired.Target) string {
	t.Helper()
	b, err := json.Marshal(target)
	require.NoError(t, err)
	return string(b)
}

func TestSQLiteServedRepos(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t, filepath.Join(t.TempDir(), "state.db"))
	a := store.ServedRepo{Repo: "github.com/acme/a", FullName: "acme/a", InstallationID: 7, CloneURL: "https://github.com/acme/a.git", DefaultBranch: "main", UpdatedAt: t0}
	b := store.ServedRepo{Repo: "github.com/acme/b", FullName: "acme/b", InstallationID: 7, CloneURL: "https://github.com/acme/b.git", DefaultBranch: "trunk", UpdatedAt: t0}
	require.NoError(t, s.SaveServedRepo(ctx, b))
	require.NoError(t, s.SaveServedRepo(ctx, a))
	b.DefaultBranch, b.InstallationID = "main", 8
	require.NoError(t, s.SaveServedRepo(ctx, b), "an update")
	got, err := s.ServedRepos(ctx)
	require.NoError(t, err)
	assert.Equal(t, []store.ServedRepo{a, b}, got)
	require.NoError(t, s.RemoveServedRepo(ctx, "github.com/acme/a"))
	got, err = s.ServedRepos(ctx)
	require.NoError(t, err)
	assert.Equal(t, []store.ServedRepo{b}, got)
}

func TestSQLiteReplies(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t, filepath.Join(t.TempDir(), "state.db"))
	first, err := s.ClaimReply(ctx, "github.com/acme/a", 7, t0)
	require.NoError(t, err)
	assert.True(t, first)
	again, err := s.ClaimReply(ctx, "github.com/acme/a", 7, t0)
	require.NoError(t, err)
	assert.False(t, again, "one reply per comment")
	other, err := s.ClaimReply(ctx, "github.com/acme/b", 7, t0)
	require.NoError(t, err)
	assert.True(t, other, "per repository")
	require.NoError(t, s.ReleaseReply(ctx, "github.com/acme/a", 7))
	retry, err := s.ClaimReply(ctx, "github.com/acme/a", 7, t0)
	require.NoError(t, err)
	assert.True(t, retry, "released: claimed again")
}

// A backup, taken while the file is open for writing, opens as a state
// file with everything committed, is readable by its owner only, and
// never replaces a file.
func TestSQLiteBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := openSQLite(t, filepath.Join(dir, "state.db"))
	require.NoError(t, f.SaveTarget(ctx, storetest.FullState(storetest.Key, "d1")))
	_, err := f.IngestCommit(ctx, "main", "c1", "")
	require.NoError(t, err)

	backup := filepath.Join(dir, "backup.db")
	require.NoError(t, f.Backup(ctx, backup))
	require.NoError(t, f.SaveTarget(ctx, storetest.FullState(storetest.Key, "d2")), "still written after")
	info, err := os.Stat(backup)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	b := openSQLite(t, backup)
	states, err := b.LoadTargets(ctx)
	require.NoError(t, err)
	require.Len(t, states, 1)
	assert.Equal(t, "d1", states[0].Target.Digest)
	last, _, err := b.LastIngested(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, "c1", last)

	err = f.Backup(ctx, backup)
	require.ErrorContains(t, err, "backup.db: it exists")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), ".pvnbot-backup-", "no temporary folder left")
	}
}
