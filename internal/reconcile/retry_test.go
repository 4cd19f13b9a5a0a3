package reconcile

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// Fetch's and getInfo's retryPolicy (Prodvana's spelling, SPEC §7).
func TestFetchAndGetInfoRetryPolicy(t *testing.T) {
	tests := map[string]func(t *testing.T, w *world){
		"failed fetch backs off from fetch's baseInterval to its maxInterval, up to its maxAttempts": func(t *testing.T, w *world) {
			w.runner.exits(api, fetch, repeat(5, 10)...)
			w.push(tgt("api", "staging", withFetch, policy(func(p *desired.Policy) {
				p.FetchRetry = config.RetryPolicy{BaseInterval: 10 * s, MaxInterval: 15 * s, MaxAttempts: 3}
			})))
			w.after(time.Hour)
			times := w.runner.times(api, fetch)
			require.Len(t, times, 3, "no fetch after maxAttempts failures in a row")
			assert.InDelta(t, 10*s, times[1]-times[0], float64(s), "first retry after fetch's baseInterval, not pollInterval (30s)")
			assert.InDelta(t, 15*s, times[2]-times[1], float64(1500*time.Millisecond), "then doubled, capped at maxInterval")
			st := w.state(api)
			assert.Equal(t, store.StatusFailed, st.Status)
			assert.Contains(t, st.Message, "gave up after 3 attempts")
			assert.Zero(t, w.runner.count(api, apply))
		},
		"maxAttempts 0 is unlimited": func(t *testing.T, w *world) {
			w.runner.exits(api, fetch, repeat(5, 100)...)
			w.push(tgt("api", "staging", withFetch, policy(func(p *desired.Policy) {
				p.FetchRetry = config.RetryPolicy{BaseInterval: 10 * s, MaxInterval: 10 * s}
			})))
			w.after(10 * m)
			assert.Greater(t, len(w.runner.times(api, fetch)), 50, "every 10s less jitter for 10 minutes")
		},
		"failed getInfo runs again after getInfo's baseInterval, then at pollInterval once it succeeds": func(t *testing.T, w *world) {
			w.runner.results(api, getInfo,
				runner.Result{ExitCode: 1},
				runner.Result{Stdout: []byte(`not json`)},
				runner.Result{Stdout: []byte(`{"outputs":[{"name":"URL","text":"https://api"}]}`)})
			w.push(tgt("api", "staging", withGetInfo, policy(func(p *desired.Policy) {
				p.GetInfoRetry = config.RetryPolicy{BaseInterval: 20 * s, MaxInterval: time.Minute}
			})))
			w.after(10 * m)
			times := w.runner.times(api, getInfo)
			require.GreaterOrEqual(t, len(times), 4)
			assert.InDelta(t, 20*s, times[1]-times[0], float64(2*s), "retried after baseInterval")
			assert.InDelta(t, 40*s, times[2]-times[1], float64(4*s), "doubled: output that is not JSON is a failure too")
			assert.Equal(t, 5*m, times[3]-times[2], "after a success, pollInterval")
			assert.Equal(t, []store.InfoOutput{{Name: "URL", Text: "https://api"}}, w.state(api).Info)
		},
		"getInfo past its maxAttempts waits for pollInterval": func(t *testing.T, w *world) {
			w.runner.results(api, getInfo, runner.Result{ExitCode: 1}, runner.Result{ExitCode: 1}, runner.Result{ExitCode: 1})
			w.push(tgt("api", "staging", withGetInfo, policy(func(p *desired.Policy) {
				p.GetInfoRetry = config.RetryPolicy{BaseInterval: 10 * s, MaxInterval: 10 * s, MaxAttempts: 1}
			})))
			w.after(6 * m)
			times := w.runner.times(api, getInfo)
			require.Len(t, times, 3)
			assert.InDelta(t, 10*s, times[1]-times[0], float64(s))
			assert.Equal(t, 5*m, times[2]-times[1])
		},
		"without retryPolicy a failed getInfo waits for pollInterval": func(t *testing.T, w *world) {
			w.runner.results(api, getInfo, runner.Result{ExitCode: 1}, runner.Result{ExitCode: 1})
			w.push(tgt("api", "staging", withGetInfo))
			w.after(6 * m)
			assert.Equal(t, []time.Duration{0, 5 * m}, w.runner.times(api, getInfo))
		},
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) { test(t, newWorld(t)) })
	}
}
