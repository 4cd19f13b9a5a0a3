package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/store"
	"github.com/pvnbot/pvnbot/internal/store/storetest"
)

// desiredDigests lists the digests desired_states holds, sorted.
func desiredDigests(t *testing.T, path string) []string {
	t.Helper()
	rows, err := rawDB(t, path).QueryContext(context.Background(), `SELECT digest FROM desired_states ORDER BY digest`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		require.NoError(t, rows.Scan(&d))
		out = append(out, d)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestSQLiteStoresDesiredStateApart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path)
	st := storetest.FullState(storetest.Key, "d1")
	require.NoError(t, s.SaveTarget(ctx, st))

	var data, target string
	require.NoError(t, rawDB(t, path).QueryRowContext(ctx,
		`SELECT t.data, d.target FROM targets t JOIN desired_states d USING (application, service, release_channel, digest)`).
		Scan(&data, &target))
	assert.NotContains(t, data, `"Target"`, "the row holds the convergence state only")
	assert.NotContains(t, data, "reg/img:tag", "no rendered job in the target's row")
	assert.Contains(t, target, "reg/img:tag", "the rendered jobs are in desired_states")
	assert.Contains(t, data, `"Replaced"`)
}

func TestSQLiteKeepsOnlyTheDesiredStateATargetPointsAt(t *testing.T) {
	tests := map[string]struct {
		batches [][]string // digests of storetest.Key saved, one SaveTargets per batch
		want    string
	}{
		"state changes only":       {batches: [][]string{{"d1"}, {"d1"}, {"d1", "d1"}}, want: "d1"},
		"new desired state":        {batches: [][]string{{"d1"}, {"d2"}}, want: "d2"},
		"back to an earlier one":   {batches: [][]string{{"d1"}, {"d2"}, {"d1"}}, want: "d1"},
		"several in one batch":     {batches: [][]string{{"d1", "d2", "d3"}}, want: "d3"},
		"back within one batch":    {batches: [][]string{{"d1"}, {"d2", "d1"}}, want: "d1"},
		"stored one, then another": {batches: [][]string{{"d1"}, {"d1", "d2"}, {"d2"}}, want: "d2"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "state.db")
			s := openSQLite(t, path)
			other := storetest.Key
			other.Service = "web"
			otherState := storetest.FullState(other, "d1")
			require.NoError(t, s.SaveTarget(ctx, otherState))
			var want store.TargetState
			for _, batch := range tt.batches {
				var states []store.TargetState
				for i, digest := range batch {
					want = storetest.FullState(storetest.Key, digest)
					want.Attempts = i
					states = append(states, want)
				}
				require.NoError(t, s.Save(ctx, store.Batch{States: states}))
			}

			assert.Equal(t, []string{"d1", tt.want}, desiredDigests(t, path), "one for each target")
			for _, h := range []repoFile{s, openSQLite(t, path)} {
				got, err := h.LoadTargets(ctx)
				require.NoError(t, err)
				assert.ElementsMatch(t, []store.TargetState{want, otherState}, got)
			}
		})
	}
}

func TestSQLiteDesiredStatePrunedByAnotherHandle(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	a, b := openSQLite(t, path), openSQLite(t, path)
	first, second := storetest.FullState(storetest.Key, "d1"), storetest.FullState(storetest.Key, "d2")
	require.NoError(t, a.SaveTarget(ctx, first))
	require.NoError(t, b.SaveTarget(ctx, second))
	require.Equal(t, []string{"d2"}, desiredDigests(t, path), "b pruned d1, which a thinks stored")

	first.Attempts = 9
	require.NoError(t, a.Save(ctx, store.Batch{States: []store.TargetState{first}}))
	for _, h := range []repoFile{a, b} {
		got, err := h.LoadTargets(ctx)
		require.NoError(t, err)
		assert.Equal(t, []store.TargetState{first}, got)
	}
	assert.Equal(t, []string{"d1"}, desiredDigests(t, path))
}

func TestSQLiteFailedBatchStoresNoDesiredState(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path)
	st := storetest.FullState(storetest.Key, "d1")
	require.Error(t, s.Save(ctx, store.Batch{States: []store.TargetState{st}, Runs: []store.JobRun{{Key: storetest.Key}}}), "a run without ID")
	assert.Empty(t, desiredDigests(t, path))

	require.NoError(t, s.Save(ctx, store.Batch{States: []store.TargetState{st}}))
	got, err := s.LoadTargets(ctx)
	require.NoError(t, err)
	assert.Equal(t, []store.TargetState{st}, got)
}

func TestSQLiteMissingDesiredState(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path)
	require.NoError(t, s.SaveTarget(ctx, storetest.FullState(storetest.Key, "d1")))
	// Without foreign keys, as sqlite3 opens the file by default.
	_, err := rawDB(t, path).ExecContext(ctx, `DELETE FROM desired_states`)
	require.NoError(t, err)

	_, err = s.LoadTargets(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "my-app/api/production")
	assert.Contains(t, err.Error(), "desired state d1 is missing")
}
