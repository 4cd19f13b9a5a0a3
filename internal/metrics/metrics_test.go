package metrics

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/clock"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/store"
)

func TestEndpointHidesNamesAndNumbers(t *testing.T) {
	tests := map[string]string{
		"/api/v3/repos/acme/deploys/check-runs":                "/repos/{owner}/{repo}/check-runs",
		"/api/v3/repos/acme/deploys/check-runs/123":            "/repos/{owner}/{repo}/check-runs/{id}",
		"/repos/acme/deploys/collaborators/alice/permission":   "/repos/{owner}/{repo}/collaborators/{user}/permission",
		"/repos/acme/deploys/issues/7/comments":                "/repos/{owner}/{repo}/issues/{id}/comments",
		"/repos/acme/deploys/issues/comments/9001/reactions":   "/repos/{owner}/{repo}/issues/comments/{id}/reactions",
		"/repos/acme/deploys/commits/" + sha40 + "/check-runs": "/repos/{owner}/{repo}/commits/{ref}/check-runs",
		"/repos/acme/deploys/commits/main/pulls":               "/repos/{owner}/{repo}/commits/{ref}/pulls",
		"/repos/acme/deploys/branches/main":                    "/repos/{owner}/{repo}/branches/{branch}",
		"/app/installations/1001/access_tokens":                "/app/installations/{id}/access_tokens",
		"/installation/repositories":                           "/installation/repositories",
		"/app/hook/deliveries/77/attempts":                     "/app/hook/deliveries/{id}/attempts",
		"/repos/acme/deploys/pulls/7":                          "/repos/{owner}/{repo}/pulls/{id}",
	}
	for path, want := range tests {
		assert.Equal(t, want, Endpoint(path), path)
	}
}

const sha40 = "0123456789abcdef0123456789abcdef01234567"

func state(service, channel, commit string, status store.Status) store.TargetState {
	return store.TargetState{
		Target: desired.Target{Key: desired.Key{Application: "shop", Service: service, ReleaseChannel: channel}, Commit: commit},
		Status: status,
	}
}

// A channel's time to converge runs from its first target taken pending on
// a commit to its last target converged, once per commit; a commit
// replaced before converging is not observed.
func TestConvergenceTimesEachChannelOnce(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	m := New()
	c := m.Convergence("acme/deploys", clk.Now)

	c.TargetChanged(ctx, state("web", "staging", "a", store.StatusPending))
	clk.Advance(time.Second)
	c.TargetChanged(ctx, state("api", "staging", "a", store.StatusPending))
	c.TargetChanged(ctx, state("web", "production", "a", store.StatusPending))
	clk.Advance(9 * time.Second)
	c.TargetChanged(ctx, state("web", "staging", "a", store.StatusConverged))
	assert.Equal(t, 0, testutil.CollectAndCount(m.converged), "api is not converged yet")
	clk.Advance(20 * time.Second)
	c.TargetChanged(ctx, state("api", "staging", "a", store.StatusConverged))
	c.TargetChanged(ctx, state("api", "staging", "a", store.StatusConverged)) // again: a steady fetch
	clk.Advance(time.Minute)
	c.TargetChanged(ctx, state("web", "production", "b", store.StatusPending)) // b replaced a before converging
	clk.Advance(time.Minute)
	c.TargetChanged(ctx, state("web", "production", "b", store.StatusConverged))

	h := histogram(t, m)
	assert.Equal(t, uint64(2), h.GetSampleCount())
	assert.InDelta(t, 30+60, h.GetSampleSum(), 1e-9, "staging took 30 s from a's first pending; production 60 s from b's")
}

func histogram(t *testing.T, m *Metrics) *dto.Histogram {
	t.Helper()
	families, err := m.registry.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == "pvnbot_commit_to_converged_seconds" {
			require.Len(t, f.GetMetric(), 1)
			return f.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatal("no pvnbot_commit_to_converged_seconds")
	return nil
}

// After a restart, the targets the engine starts with count: a channel
// with a failed target is not converged because another one converged.
func TestConvergenceCountsTheTargetsItWasSeededWith(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	m := New()
	c := m.Convergence("acme/deploys", clk.Now)
	c.Seed([]store.TargetState{state("web", "staging", "a", store.StatusFailed), state("api", "staging", "a", store.StatusConverged)})
	c.TargetChanged(ctx, state("api", "staging", "b", store.StatusPending))
	c.TargetChanged(ctx, state("api", "staging", "b", store.StatusConverged))
	assert.Equal(t, 0, testutil.CollectAndCount(m.converged), "web is FAILED")
	c.TargetChanged(ctx, state("web", "staging", "b", store.StatusPending))
	clk.Advance(time.Minute)
	c.TargetChanged(ctx, state("web", "staging", "b", store.StatusConverged))
	assert.Equal(t, uint64(1), histogram(t, m).GetSampleCount())
}

// A refused delivery's event header is the sender's: only the events
// handled are labels, and every outcome of those exists from the start.
func TestRefusedDeliveriesOfUnknownEventsAreOther(t *testing.T) {
	m := New()
	m.Events("push", "issue_comment")
	m.Refused("push")
	m.Refused("forged-1")
	m.Refused("\xff\xfe")
	assert.Equal(t, 1.0, testutil.ToFloat64(m.deliveries.WithLabelValues("push", "refused")))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.deliveries.WithLabelValues("other", "refused")))
	assert.Equal(t, 3*len(outcomes), testutil.CollectAndCount(m.deliveries), "push, issue_comment and other, each outcome")
}

func TestQueueMetricsShowAStoreError(t *testing.T) {
	q := Queue(func() (store.DeliveryCounts, error) { return store.DeliveryCounts{}, errors.New("disk I/O error") }, time.Now)
	_, err := testutil.CollectAndFormat(q, expfmt.TypeTextPlain, "pvnbot_webhook_queue_depth")
	require.ErrorContains(t, err, "disk I/O error")
}
