// Package storetest is the conformance suite every store.DB backend
// passes: call Run from the backend's tests with a function that opens a
// fresh, empty one.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// Open returns a fresh, empty DB; the suite closes it.
type Open func(t *testing.T) store.DB

// Repo is the repository the suite's records belong to.
const Repo = "github.com/acme/deploys"

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	t.Run("repositories are kept apart", func(t *testing.T) {
		db := open(t)
		t.Cleanup(func() { _ = db.Close() })
		reposApart(t, db)
	})
	tests := map[string]func(t *testing.T, s store.Store){
		"target state survives a round trip":         targetRoundTrip,
		"save replaces the state of the same key":    saveReplaces,
		"empty store loads no targets":               emptyLoad,
		"job run is started, then finished":          runStartFinish,
		"unknown job run is not found":               runNotFound,
		"runs are listed newest first with a limit":  runsOrder,
		"approvals are kept per target and digest":   approvalsFilter,
		"approvals are consumed by ID":               approvalsConsume,
		"current approvals are the targets' own":     approvalsCurrent,
		"ingest log keeps the first record of a sha": ingestLog,
		"a batch saves targets and runs at once":     batchSaves,
		"a batch with a bad run saves nothing":       batchAllOrNothing,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			t.Cleanup(func() { _ = db.Close() })
			test(t, db.Repo(Repo))
		})
	}
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)

// Key is the key the suite uses for its main target.
var Key = desired.Key{Application: "my-app", Service: "api", ReleaseChannel: "production"}

// FullTarget is a desired.Target with every field set, including the
// nested job specs, for round-trip checks.
func FullTarget(key desired.Key, digest string) desired.Target {
	spec := func(a runner.Action) runner.Spec {
		return runner.Spec{
			RunID: "", Action: a, Service: key.Service, Application: key.Application,
			ReleaseChannel: key.ReleaseChannel, Runtime: "vm", Commit: "c0ffee", DesiredVersion: "v1",
			ProxyRuntime: "local", Namespace: "ns", Image: "reg/img:tag",
			Entrypoint: []string{"sh", "-c"}, Cmd: []string{"apply", "--id=1"},
			WorkingDirectory: "deploy", ServiceAccount: "sa", TTL: time.Hour,
			Manifest: []byte("apiVersion: batch/v1\nkind: Job\n"),
			Env: []runner.EnvVar{
				{Name: "A", Value: "1"},
				{Name: "S", SecretRef: &runner.SecretRef{Name: "sec", Key: "k"}},
				{Name: "T", Value: "hidden", Sensitive: true},
			},
			Timeout: 5 * time.Minute,
		}
	}
	fetch, info := spec(runner.ActionFetch), spec(runner.ActionGetInfo)
	return desired.Target{
		Key: key, Runtime: "vm", Connection: "vm", Commit: "c0ffee", Digest: digest,
		ApplyID: "v1", DesiredVersion: "v1",
		Apply: spec(runner.ActionApply), Fetch: &fetch, GetInfo: &info,
		Policy: desired.Policy{
			FetchMode: config.FetchModeStructuredOutput, FetchPollInterval: 30 * time.Second,
			SteadyStatePollInterval: 5 * time.Minute, GetInfoPollInterval: time.Minute,
			ConvergenceGracePeriod: 10 * time.Minute, MaxConcurrency: 2,
			Retry:              config.RetryPolicy{BaseInterval: time.Second, MaxInterval: time.Minute, MaxAttempts: 3},
			RetryableExitCodes: []int{75}, RequireApprovalBeforeApply: true,
		},
		Preconditions: []desired.Precondition{
			{ReleaseChannelStable: "staging"},
			{ManualApproval: &config.ManualApproval{Name: "gate", Description: "d", EveryAction: true, MinApprovers: 2}},
		},
		Params: map[string]string{"changeId": "42"},
	}
}

// FullState is a TargetState with every field set.
func FullState(key desired.Key, digest string) store.TargetState {
	out := func(id string, code int) store.Outcome {
		return store.Outcome{RunID: id, Commit: "c0ffee", Started: t0, Finished: t0.Add(time.Second), ExitCode: code, Error: "e"}
	}
	return store.TargetState{
		Target: FullTarget(key, digest), DesiredSeq: 3, LatestSeq: 5,
		Status: store.StatusConverging, Message: "waiting", UpdatedAt: t0,
		NextDue: t0.Add(time.Minute), NextInfoDue: t0.Add(2 * time.Minute),
		ApplyStartedAt: t0, AppliedDigest: digest, LastAppliedID: "v1",
		Attempts: 2, FetchFailures: 1, QueueSeq: 7,
		Running:   store.RunRef{RunID: "r9", Action: runner.ActionApply, Digest: digest, Started: t0},
		LastFetch: out("r1", 2), LastApply: out("r2", 0), LastGetInfo: out("r3", 1),
		Info:     []store.InfoOutput{{Name: "URL", Text: "https://x"}},
		InfoAt:   t0,
		Replaced: store.ReplacedState{Commit: "old", Digest: "d0", Status: store.StatusReplaced, At: t0},
	}
}

func targetRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	want := FullState(Key, "d1")
	require.NoError(t, s.SaveTarget(ctx, want))
	got, err := s.LoadTargets(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, want, got[0])
}

func saveReplaces(t *testing.T, s store.Store) {
	ctx := context.Background()
	other := Key
	other.ReleaseChannel = "staging"
	require.NoError(t, s.SaveTarget(ctx, FullState(Key, "d1")))
	require.NoError(t, s.SaveTarget(ctx, FullState(other, "d1")))
	second := FullState(Key, "d2")
	second.Status = store.StatusDeleted
	require.NoError(t, s.SaveTarget(ctx, second))

	got, err := s.LoadTargets(ctx)
	require.NoError(t, err)
	byKey := map[desired.Key]store.TargetState{}
	for _, st := range got {
		byKey[st.Key()] = st
	}
	require.Len(t, byKey, 2)
	assert.Equal(t, second, byKey[Key])
	assert.Equal(t, "d1", byKey[other].Target.Digest)
}

func emptyLoad(t *testing.T, s store.Store) {
	got, err := s.LoadTargets(context.Background())
	require.NoError(t, err)
	assert.Empty(t, got)
}

func runStartFinish(t *testing.T, s store.Store) {
	ctx := context.Background()
	run := store.JobRun{
		ID: "run-1", Key: Key, Action: runner.ActionApply, Commit: "c0ffee", Digest: "d1",
		DesiredVersion: "v1", Started: t0, ApprovedBy: []string{"alice", "bob"},
	}
	require.NoError(t, s.StartRun(ctx, run))
	got, err := s.Run(ctx, "run-1")
	require.NoError(t, err)
	assert.Equal(t, run, got)
	assert.True(t, got.Finished.IsZero(), "a started run is not finished")

	run.Finished, run.ExitCode, run.OutputTail, run.Error = t0.Add(time.Minute), 3, "boom\n", "exit 3"
	run.Note = "re-run: previous apply's result was not recorded"
	require.NoError(t, s.FinishRun(ctx, run))
	got, err = s.Run(ctx, "run-1")
	require.NoError(t, err)
	assert.Equal(t, run, got)

	runs, err := s.Runs(ctx, Key, 0)
	require.NoError(t, err)
	assert.Equal(t, []store.JobRun{run}, runs, "finishing does not add a second run")
}

func runNotFound(t *testing.T, s store.Store) {
	_, err := s.Run(context.Background(), "nope")
	assert.True(t, errors.Is(err, store.ErrNotFound), "got %v", err)
}

func runsOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	other := Key
	other.Service = "web"
	for i, id := range []string{"a", "b", "c"} {
		require.NoError(t, s.StartRun(ctx, store.JobRun{ID: id, Key: Key, Action: runner.ActionFetch, Started: t0.Add(time.Duration(i) * time.Second)}))
	}
	require.NoError(t, s.StartRun(ctx, store.JobRun{ID: "same-time", Key: Key, Action: runner.ActionFetch, Started: t0.Add(2 * time.Second)}))
	require.NoError(t, s.StartRun(ctx, store.JobRun{ID: "x", Key: other, Action: runner.ActionFetch, Started: t0.Add(time.Hour)}))

	runs, err := s.Runs(ctx, Key, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"same-time", "c", "b", "a"}, ids(runs))

	runs, err = s.Runs(ctx, Key, 2)
	require.NoError(t, err)
	assert.Equal(t, []string{"same-time", "c"}, ids(runs))
}

func ids(runs []store.JobRun) []string {
	var out []string
	for _, r := range runs {
		out = append(out, r.ID)
	}
	return out
}

func approvalsFilter(t *testing.T, s store.Store) {
	ctx := context.Background()
	staging := Key
	staging.ReleaseChannel = "staging"
	a1 := store.Approval{ID: "a1", Key: Key, Digest: "d1", Commit: "c1", Who: "alice", At: t0, Source: "comment", URL: "https://github.com/acme/deploys/pull/7#issuecomment-1"}
	a2 := store.Approval{ID: "a2", Key: Key, Digest: "d1", Commit: "c2", Who: "bob", At: t0.Add(time.Second), Source: "button"}
	require.NoError(t, s.AddApproval(ctx, a1))
	require.NoError(t, s.AddApproval(ctx, store.Approval{ID: "a3", Key: Key, Digest: "d0", Who: "carol", At: t0}))
	require.NoError(t, s.AddApproval(ctx, store.Approval{ID: "a4", Key: staging, Digest: "d1", Who: "dave", At: t0}))
	require.NoError(t, s.AddApproval(ctx, a2))
	require.Error(t, s.AddApproval(ctx, store.Approval{Key: Key, Digest: "d1", Who: "erin"}), "an approval without ID")

	got, err := s.Approvals(ctx, Key, "d1")
	require.NoError(t, err)
	assert.Equal(t, []store.Approval{a1, a2}, got)

	got, err = s.Approvals(ctx, Key, "d9")
	require.NoError(t, err)
	assert.Empty(t, got)
}

func approvalsConsume(t *testing.T, s store.Store) {
	ctx := context.Background()
	alice := store.Approval{ID: "a1", Key: Key, Digest: "d1", Commit: "c1", Who: "alice", At: t0}
	bob := store.Approval{ID: "a2", Key: Key, Digest: "d1", Commit: "c1", Who: "bob", At: t0.Add(time.Second)}
	require.NoError(t, s.AddApproval(ctx, alice))
	require.NoError(t, s.AddApproval(ctx, bob))
	alice.ConsumedBy = "run-1"
	changed := alice
	changed.Who = "mallory" // only the consumption of a stored approval changes
	require.NoError(t, s.Save(ctx, store.Batch{Approvals: []store.Approval{changed}}))

	got, err := s.Approvals(ctx, Key, "d1")
	require.NoError(t, err)
	assert.Equal(t, []store.Approval{alice, bob}, got, "alice's approval went to run-1, bob's is unused")
}

func approvalsCurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	st := FullState(Key, "d1") // brought by commit c0ffee
	require.NoError(t, s.SaveTarget(ctx, st))
	current := store.Approval{ID: "a1", Key: Key, Digest: "d1", Commit: "c0ffee", Who: "alice", At: t0}
	for _, a := range []store.Approval{
		current,
		{ID: "a2", Key: Key, Digest: "d1", Commit: "older", Who: "bob", At: t0},    // the same desired state brought by another commit
		{ID: "a3", Key: Key, Digest: "d0", Commit: "c0ffee", Who: "carol", At: t0}, // another desired state
		{ID: "a4", Key: desired.Key{Application: "my-app", Service: "gone", ReleaseChannel: "production"}, Digest: "d1", Commit: "c0ffee", Who: "dave", At: t0},
	} {
		require.NoError(t, s.AddApproval(ctx, a))
	}
	got, err := s.CurrentApprovals(ctx)
	require.NoError(t, err)
	assert.Equal(t, []store.Approval{current}, got)
}

func ingestLog(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, _, err := s.LastIngested(ctx, "main")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.IngestCommit(ctx, "main", "", "")
	require.Error(t, err, "an empty sha")

	first, err := s.IngestCommit(ctx, "main", "c1", "")
	require.NoError(t, err)
	second, err := s.IngestCommit(ctx, "main", "c2", "a.pvn.yaml:1:1: broken")
	require.NoError(t, err)
	assert.Greater(t, second, first)
	again, err := s.IngestCommit(ctx, "main", "c1", "")
	require.NoError(t, err)
	assert.Equal(t, first, again, "a sha keeps its first sequence number")
	sha, seq, err := s.LastIngested(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, "c2", sha, "going back to an older commit does not move the cursor")
	assert.Equal(t, second, seq)
	_, _, err = s.LastIngested(ctx, "release")
	require.ErrorIs(t, err, store.ErrNotFound, "branches are apart")
}

// reposApart writes the same names in two repositories and shows that
// neither sees the other's records.
func reposApart(t *testing.T, db store.DB) {
	ctx := context.Background()
	a, b := db.Repo(Repo), db.Repo("github.com/other/deploys")
	stA, stB := FullState(Key, "d1"), FullState(Key, "d2")
	stB.Status = store.StatusFailed
	run := func(id, digest string) store.JobRun {
		return store.JobRun{ID: id, Key: Key, Action: runner.ActionApply, Digest: digest, Started: t0}
	}
	approval := func(id, digest string) store.Approval {
		return store.Approval{ID: id, Key: Key, Digest: digest, Commit: "c0ffee", Who: "alice", At: t0}
	}
	require.NoError(t, a.Save(ctx, store.Batch{States: []store.TargetState{stA}, Runs: []store.JobRun{run("ra", "d1")}, Approvals: []store.Approval{approval("aa", "d1")}}))
	require.NoError(t, b.Save(ctx, store.Batch{States: []store.TargetState{stB}, Runs: []store.JobRun{run("rb", "d2")}, Approvals: []store.Approval{approval("ab", "d2")}}))
	_, err := a.IngestCommit(ctx, "main", "sha-a", "")
	require.NoError(t, err)

	for _, tc := range []struct {
		s      store.Store
		state  store.TargetState
		run    string
		digest string
	}{{a, stA, "ra", "d1"}, {b, stB, "rb", "d2"}} {
		got, err := tc.s.LoadTargets(ctx)
		require.NoError(t, err)
		assert.Equal(t, []store.TargetState{tc.state}, got)
		runs, err := tc.s.Runs(ctx, Key, 0)
		require.NoError(t, err)
		assert.Equal(t, []string{tc.run}, ids(runs))
		approvals, err := tc.s.CurrentApprovals(ctx)
		require.NoError(t, err)
		require.Len(t, approvals, 1)
		assert.Equal(t, tc.digest, approvals[0].Digest)
	}
	_, err = b.Run(ctx, "ra")
	require.ErrorIs(t, err, store.ErrNotFound, "a run of another repository")
	_, _, err = b.LastIngested(ctx, "main")
	require.ErrorIs(t, err, store.ErrNotFound, "another repository's ingest log")

	repos, err := db.Repos(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"github.com/acme/deploys", "github.com/other/deploys"}, repos)
}

func batchSaves(t *testing.T, s store.Store) {
	ctx := context.Background()
	staging := Key
	staging.ReleaseChannel = "staging"
	require.NoError(t, s.SaveTarget(ctx, FullState(Key, "d0")))
	started := store.JobRun{ID: "run-1", Key: Key, Action: runner.ActionApply, Digest: "d1", Started: t0}
	require.NoError(t, s.StartRun(ctx, store.JobRun{ID: "run-0", Key: Key, Action: runner.ActionFetch, Started: t0}))
	finished := store.JobRun{ID: "run-0", Key: Key, Action: runner.ActionFetch, Started: t0, Finished: t0.Add(time.Second), ExitCode: 2}

	first, last := FullState(Key, "d1"), FullState(Key, "d2")
	other := FullState(staging, "d1")
	require.NoError(t, s.Save(ctx, store.Batch{States: []store.TargetState{first, other, last}, Runs: []store.JobRun{started, finished}}))

	got, err := s.LoadTargets(ctx)
	require.NoError(t, err)
	byKey := map[desired.Key]store.TargetState{}
	for _, st := range got {
		byKey[st.Key()] = st
	}
	assert.Equal(t, map[desired.Key]store.TargetState{Key: last, staging: other}, byKey, "the later state of a key wins")
	runs, err := s.Runs(ctx, Key, 0)
	require.NoError(t, err)
	assert.Equal(t, []store.JobRun{started, finished}, runs, "a run is replaced by ID, not added again")

	require.NoError(t, s.Save(ctx, store.Batch{}), "an empty batch is fine")
}

func batchAllOrNothing(t *testing.T, s store.Store) {
	ctx := context.Background()
	err := s.Save(ctx, store.Batch{States: []store.TargetState{FullState(Key, "d1")}, Runs: []store.JobRun{{Key: Key, Action: runner.ActionApply}}})
	require.Error(t, err, "a run without ID")
	got, err := s.LoadTargets(ctx)
	require.NoError(t, err)
	assert.Empty(t, got)
}
