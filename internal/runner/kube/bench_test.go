package kube

import (
	"slices"
	"testing"
	"time"

	"github.com/pvnbot/pvnbot/internal/runner"
)

// BenchmarkJobRoundTrip measures a run on the test plane, from the Job's
// creation to its exit code and log read back: the overhead the Kubernetes
// backend adds to a job that does nothing.
//
//	go test -run '^$' -bench JobRoundTrip -benchtime 50x ./internal/runner/kube/
func BenchmarkJobRoundTrip(b *testing.B) {
	ctx := ctxFor(b, 30*time.Minute)
	r := newRunner()
	rt := runtimeName("bench")
	// The namespace is made once, outside the measure.
	if _, err := r.Run(ctx, taskSpec(b, rt, runner.ActionFetch, "exit 0")); err != nil {
		b.Fatal(err)
	}
	var took []time.Duration
	for b.Loop() {
		spec := taskSpec(b, rt, runner.ActionFetch, "exit 2")
		start := time.Now()
		res, err := r.Run(ctx, spec)
		took = append(took, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if res.ExitCode != 2 {
			b.Fatalf("exit code %d, want 2", res.ExitCode)
		}
	}
	slices.Sort(took)
	quantile := func(q float64) float64 {
		return float64(took[int(q*float64(len(took)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(quantile(0.5), "p50-ms")
	b.ReportMetric(quantile(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
