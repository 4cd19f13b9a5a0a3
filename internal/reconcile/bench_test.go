package reconcile

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/pvnbot/pvnbot/internal/clock"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// instantRunner answers at once: fetch says drift at t0 and converged
// afterwards, apply succeeds.
type instantRunner struct{ clock clock.Clock }

func (r instantRunner) Run(ctx context.Context, spec runner.Spec) (runner.Result, error) {
	if spec.Action == runner.ActionFetch && r.clock.Now().Equal(t0) {
		return runner.Result{ExitCode: runner.ExitCodeDrift}, nil
	}
	return runner.Result{}, nil
}

// nopStore keeps nothing, so that the benchmark measures the engine alone.
type nopStore struct{}

func (nopStore) LoadTargets(context.Context) ([]store.TargetState, error)   { return nil, nil }
func (nopStore) CurrentApprovals(context.Context) ([]store.Approval, error) { return nil, nil }
func (nopStore) Save(context.Context, store.Batch) error                    { return nil }
func (nopStore) Approvals(context.Context, desired.Key, string) ([]store.Approval, error) {
	return nil, nil
}

// BenchmarkConverge10k converges 10,000 targets (fetch 2 → apply → fetch 0)
// per iteration, and reports the cost per target and the peak memory.
func BenchmarkConverge10k(b *testing.B) {
	const n = 10_000
	targets := make([]desired.Target, n)
	for i := range targets {
		targets[i] = tgt(fmt.Sprintf("svc-%d", i), "staging", withFetch)
		targets[i].Commit = "c1"
	}
	for name, newStore := range map[string]func() Store{
		"engine":       func() Store { return nopStore{} },
		"memory-store": func() Store { return store.NewMemory().Repo("bench") },
	} {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			var peakHeap, peakSys uint64
			var ms runtime.MemStats
			sample := func() {
				runtime.ReadMemStats(&ms)
				peakHeap, peakSys = max(peakHeap, ms.HeapInuse), max(peakSys, ms.Sys)
			}
			b.ReportAllocs()
			runtime.ReadMemStats(&ms)
			startMallocs := ms.Mallocs
			b.ResetTimer()
			for range b.N {
				c := clock.NewFake(t0)
				e, err := New(ctx, Options{Runner: instantRunner{clock: c}, Store: newStore(), Clock: c, Logger: nil})
				if err != nil {
					b.Fatal(err)
				}
				if err := e.SetDesired(ctx, "c1", targets); err != nil {
					b.Fatal(err)
				}
				if err := e.Settle(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				sample()
				b.StartTimer()
				c.Advance(30 * time.Second)
				if err := e.Settle(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				sample()
				for _, st := range e.Snapshot() {
					if st.Status != store.StatusConverged {
						b.Fatalf("%s is %s", st.Key(), st.Status)
					}
				}
				b.StartTimer()
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.Mallocs-startMallocs)/float64(b.N*n), "allocs/target")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/target")
			b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(peakSys)/(1<<20), "peak-sys-MiB")
		})
	}
}
