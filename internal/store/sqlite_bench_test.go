package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
	"github.com/pvnbot/pvnbot/internal/store/storetest"
)

// syncModes runs a write benchmark with each durability setting.
var syncModes = map[string][]store.SQLiteOption{
	"sync=FULL":   nil,
	"sync=NORMAL": {store.WithSynchronousNormal()},
}

func BenchmarkSQLiteSaveTarget(b *testing.B) {
	for name, opts := range syncModes {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s := openSQLite(b, filepath.Join(b.TempDir(), "state.db"), opts...)
			st := storetest.FullState(storetest.Key, "d1")
			b.ReportAllocs()
			defer reportCPU(b)()
			for i := 0; b.Loop(); i++ {
				st.Attempts = i
				if err := s.SaveTarget(ctx, st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSQLiteStartFinishRun(b *testing.B) {
	for name, opts := range syncModes {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s := openSQLite(b, filepath.Join(b.TempDir(), "state.db"), opts...)
			b.ReportAllocs()
			defer reportCPU(b)()
			for i := 0; b.Loop(); i++ {
				run := store.JobRun{
					ID: fmt.Sprintf("run-%d", i), Key: storetest.Key, Action: runner.ActionApply,
					Commit: "c0ffee", Digest: "d1", DesiredVersion: "v1", Started: t0, ApprovedBy: []string{"alice"},
				}
				if err := s.StartRun(ctx, run); err != nil {
					b.Fatal(err)
				}
				run.Finished, run.OutputTail = t0.Add(time.Second), "applied\n"
				if err := s.FinishRun(ctx, run); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSQLiteLoadTargets10k(b *testing.B) {
	ctx := context.Background()
	s := openSQLite(b, filepath.Join(b.TempDir(), "state.db"), store.WithSynchronousNormal())
	const n = 10_000
	for i := range n {
		require.NoError(b, s.SaveTarget(ctx, storetest.FullState(keyN("svc", i), "d1")))
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		got, err := s.LoadTargets(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != n {
			b.Fatalf("loaded %d targets, want %d", len(got), n)
		}
	}
}

// reportCPU adds the process's CPU time per op (cpu-ns/op), a figure that,
// unlike ns/op, holds on a machine busy with other work. Call the returned
// function when the loop is done.
func reportCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() {
		b.ReportMetric(float64((cpuTime(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSQLiteSaveTargetParallel is the engine's case: many goroutines
// saving their targets' states at once through one handle.
func BenchmarkSQLiteSaveTargetParallel(b *testing.B) {
	for name, opts := range syncModes {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s := openSQLite(b, filepath.Join(b.TempDir(), "state.db"), opts...)
			var worker atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				st := storetest.FullState(keyN("svc", int(worker.Add(1))), "d1")
				for pb.Next() {
					st.Attempts++
					if err := s.SaveTarget(ctx, st); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
