package store_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"testing"
	"time"

	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
	"github.com/pvnbot/pvnbot/internal/store/storetest"
)

// BenchmarkSQLiteConverge1000 writes what the engine writes while 1,000
// targets converge, on a fresh file with synchronous=NORMAL: every new
// desired state in one commit, then for each target a fetch, an apply and
// a second fetch, each job's start and end committed with the target's
// state, four targets per commit. One op is the whole 1,000.
func BenchmarkSQLiteConverge1000(b *testing.B) {
	const n, perCommit = 1000, 4
	ctx := context.Background()
	states := make([]store.TargetState, n)
	for i := range states {
		states[i] = store.TargetState{
			Target: storetest.FullTarget(keyN("svc", i), "d1"), DesiredSeq: 1, LatestSeq: 1,
			Status: store.StatusPending, UpdatedAt: t0,
		}
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		b.StopTimer()
		file, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "state.db"), store.WithSynchronousNormal())
		if err != nil {
			b.Fatal(err)
		}
		s := file.RepoOf(storetest.Repo)
		b.StartTimer()
		if err := s.Save(ctx, store.Batch{States: states}); err != nil {
			b.Fatal(err)
		}
		steps := []struct {
			status store.Status
			action runner.Action
		}{
			{store.StatusFetching, runner.ActionFetch},
			{store.StatusApplying, runner.ActionApply},
			{store.StatusConverging, runner.ActionFetch},
			{store.StatusConverged, ""},
		}
		clock := t0
		for first := 0; first < n; first += perCommit {
			var prev []store.JobRun
			for step, next := range steps {
				var batchStates []store.TargetState
				var runs []store.JobRun
				for _, run := range prev {
					run.Finished, run.OutputTail = clock, "ok\n"
					runs = append(runs, run)
				}
				prev = prev[:0]
				for i := first; i < first+perCommit; i++ {
					st := states[i]
					clock = clock.Add(time.Millisecond)
					st.Status, st.UpdatedAt = next.status, clock
					st.LastFetch = store.Outcome{RunID: runID(i, step), Commit: "c0ffee", Started: clock, Finished: clock, ExitCode: 2}
					batchStates = append(batchStates, st)
					if next.action != "" {
						run := store.JobRun{
							ID: runID(i, step), Key: st.Key(), Action: next.action,
							Commit: "c0ffee", Digest: "d1", DesiredVersion: "v1", Started: st.UpdatedAt,
						}
						runs, prev = append(runs, run), append(prev, run)
					}
				}
				if err := s.Save(ctx, store.Batch{States: batchStates, Runs: runs}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		if err := file.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// runID is a fixed stand-in for the engine's random run IDs: they spread
// over the id index the same way.
func runID(target, step int) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d-%d", target, step)
	return fmt.Sprintf("%016x%04x", h.Sum64(), step)
}

// BenchmarkSQLiteRecentRuns100k reads the 20 newest of 100,000 job runs,
// which sorts the whole audit log: no index is kept for it.
func BenchmarkSQLiteRecentRuns100k(b *testing.B) {
	const n, batch = 100_000, 1000
	ctx := context.Background()
	s := openSQLite(b, filepath.Join(b.TempDir(), "state.db"), store.WithSynchronousNormal())
	clock := t0
	for first := 0; first < n; first += batch {
		runs := make([]store.JobRun, batch)
		for i := range runs {
			clock = clock.Add(time.Second)
			runs[i] = store.JobRun{
				ID: runID(first+i, 0), Key: keyN("svc", (first+i)%1000), Action: runner.ActionFetch,
				Commit: "c0ffee", Digest: "d1", DesiredVersion: "v1", Started: clock, Finished: clock, ExitCode: 2,
			}
		}
		if err := s.Save(ctx, store.Batch{Runs: runs}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		runs, err := s.RecentRuns(ctx, 20)
		if err != nil {
			b.Fatal(err)
		}
		if len(runs) != 20 || !runs[0].Started.Equal(clock) {
			b.Fatalf("got %d runs, the newest started %v", len(runs), runs[0].Started)
		}
	}
}
