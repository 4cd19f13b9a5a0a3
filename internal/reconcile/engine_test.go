package reconcile

import (
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

const (
	apply   = runner.ActionApply
	fetch   = runner.ActionFetch
	getInfo = runner.ActionGetInfo
	s       = time.Second
	m       = time.Minute
)

var (
	api     = key("api", "staging")
	web     = key("web", "staging")
	apiProd = key("api", "production")
)

func repeat(code, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = code
	}
	return out
}

// TestConvergence has one scenario per rule of the seed and SPEC §3.
func TestConvergence(t *testing.T) {
	tests := map[string]func(t *testing.T, w *world){
		"fetch exit 0: the service is at the desired state, apply is not run": func(t *testing.T, w *world) {
			w.runner.exits(api, fetch, 0)
			w.push(tgt("api", "staging", withFetch))
			assert.Equal(t, store.StatusConverged, w.status(api))
			assert.Zero(t, w.runner.count(api, apply))
		},
		"fetch exit 2: apply runs, then fetch polls every pollInterval until exit 0: converged": func(t *testing.T, w *world) {
			w.runner.exits(api, fetch, 2, 2, 0)
			w.push(tgt("api", "staging", withFetch))
			assert.Equal(t, store.StatusConverging, w.status(api))
			w.after(30 * s)
			assert.Equal(t, store.StatusConverging, w.status(api), "fetch still says drift within the grace period")
			w.after(30 * s)
			assert.Equal(t, store.StatusConverged, w.status(api))
			assert.Equal(t, []time.Duration{0}, w.runner.times(api, apply))
			assert.Equal(t, []time.Duration{0, 30 * s, 60 * s}, w.runner.times(api, fetch))
			assert.Equal(t, []Status{store.StatusPending, store.StatusFetching, store.StatusApplying, store.StatusConverging, store.StatusConverged},
				w.reporter.statuses(api))
		},
		"fetch exit 5: FAILED, no action, retried at pollInterval with backoff": func(t *testing.T, w *world) {
			w.runner.exits(api, fetch, 5)
			w.push(tgt("api", "staging", withFetch))
			st := w.state(api)
			assert.Equal(t, store.StatusFailed, st.Status)
			assert.Contains(t, st.Message, "exit code 5")
			w.after(26 * s)
			assert.Len(t, w.runner.times(api, fetch), 1, "not retried before pollInterval less 10% jitter")
			w.after(4 * s)
			assert.Len(t, w.runner.times(api, fetch), 2, "retried within pollInterval")
			w.after(50 * s)
			assert.Len(t, w.runner.times(api, fetch), 2, "the second retry backs off to twice pollInterval")
			w.after(10 * s)
			assert.Len(t, w.runner.times(api, fetch), 3)
			assert.Zero(t, w.runner.count(api, apply), "no action on a fetch error")
		},
		"without fetch: apply runs once per new desired state": func(t *testing.T, w *world) {
			w.push(tgt("api", "staging"))
			assert.Equal(t, store.StatusConverged, w.status(api), "without fetch a successful apply is converged")
			w.after(time.Hour)
			w.push(tgt("api", "staging"))
			assert.Equal(t, 1, w.runner.count(api, apply))
			w.push(tgt("api", "staging", digest("v2")))
			assert.Equal(t, 2, w.runner.count(api, apply))
			assert.Equal(t, store.StatusConverged, w.status(api))
		},
		"without fetch: applyId unchanged: converged without apply": func(t *testing.T, w *world) {
			w.push(tgt("api", "staging", applyID("sha-1")))
			w.push(tgt("api", "staging", applyID("sha-1"), digest("v2")))
			assert.Equal(t, 1, w.runner.count(api, apply))
			st := w.state(api)
			assert.Equal(t, store.StatusConverged, st.Status)
			assert.Contains(t, st.Message, `applyId "sha-1"`)
		},
		"without fetch: applyId changed: apply": func(t *testing.T, w *world) {
			w.push(tgt("api", "staging", applyID("sha-1")))
			w.push(tgt("api", "staging", applyID("sha-2"), digest("v2")))
			assert.Equal(t, 2, w.runner.count(api, apply))
			assert.Equal(t, "sha-2", w.state(api).LastAppliedID)
		},
		"convergence grace period exceeded while fetch says drift: apply again": func(t *testing.T, w *world) {
			w.runner.exits(api, fetch, append(repeat(2, 21), 0)...)
			w.push(tgt("api", "staging", withFetch))
			w.after(9*m + 59*s)
			assert.Equal(t, 1, w.runner.count(api, apply), "no second apply within the grace period")
			w.after(1 * s)
			assert.Equal(t, []time.Duration{0, 10 * m}, w.runner.times(api, apply), "grace period measured from the start of apply")
			assert.Contains(t, w.runs(api)[0].Note, "grace period of 10m0s exceeded")
			w.after(30 * s)
			assert.Equal(t, store.StatusConverged, w.status(api))
		},
		"steady state: fetch every steadyStatePollInterval; drift goes back to apply": func(t *testing.T, w *world) {
			w.runner.exits(api, fetch, 0, 0, 0, 2, 0)
			w.push(tgt("api", "staging", withFetch))
			w.after(3*steadyMax(5*m) + 30*s)
			assert.Equal(t, store.StatusConverged, w.status(api))
			fetches := w.runner.times(api, fetch)
			require.Len(t, fetches, 5)
			assert.Equal(t, fetches[3:4], w.runner.times(api, apply), "the drift found by the fourth fetch is applied at once")
			for i := 1; i < 4; i++ {
				assertSteady(t, 5*m, fetches[i]-fetches[i-1])
			}
			assert.Equal(t, fetches[3]+30*s, fetches[4], "after apply, fetch every pollInterval")
		},
		"pollInterval and steadyStatePollInterval are honoured to the second": func(t *testing.T, w *world) {
			w.runner.exits(api, fetch, 2, 2, 0, 0)
			w.push(tgt("api", "staging", withFetch, policy(func(p *desired.Policy) {
				p.FetchPollInterval, p.SteadyStatePollInterval = 45*s, 7*m
			})))
			w.after(90 * s)
			assert.Equal(t, []time.Duration{0, 45 * s, 90 * s}, w.runner.times(api, fetch), "pollInterval to the second")
			w.after(steadyMax(7 * m))
			fetches := w.runner.times(api, fetch)
			require.Len(t, fetches, 4)
			assertSteady(t, 7*m, fetches[3]-90*s)
		},
		"releaseChannelStable waits for the same commit converged in the upstream channel": func(t *testing.T, w *world) {
			w.runner.exits(api, fetch, 2, 2, 0)
			w.runner.exits(apiProd, fetch, 2, 0)
			w.push(tgt("api", "staging", withFetch), tgt("api", "production", withFetch, stableAfter("staging")))
			st := w.state(apiProd)
			assert.Equal(t, store.StatusWaitingPreconditions, st.Status)
			assert.Contains(t, st.Message, "staging")
			w.after(59 * s)
			assert.Zero(t, w.runner.count(apiProd, apply))
			w.after(1 * s)
			assert.Equal(t, store.StatusConverged, w.status(api))
			assert.Equal(t, []time.Duration{60 * s}, w.runner.times(apiProd, apply), "production applies as soon as staging converged")
		},
		"releaseChannelStable: staging converged on an older commit does not count; unchanged staging does": func(t *testing.T, w *world) {
			w.push(tgt("api", "staging"), tgt("api", "production", stableAfter("staging")))
			require.Equal(t, 1, w.runner.count(apiProd, apply))

			w.runner.exits(api, apply, 1)
			w.push(tgt("api", "staging", digest("v2")), tgt("api", "production", stableAfter("staging"), digest("v2")))
			assert.Equal(t, store.StatusFailed, w.status(api))
			assert.Equal(t, store.StatusWaitingPreconditions, w.status(apiProd))

			w.push(tgt("api", "staging", digest("v1")), tgt("api", "production", stableAfter("staging"), digest("v3")))
			assert.Equal(t, store.StatusWaitingPreconditions, w.status(apiProd), "staging's older success does not count for the new commit")

			w.runner.exits(api, apply, 0)
			w.after(1 * m)
			assert.Equal(t, store.StatusConverged, w.status(api))
			assert.Equal(t, 2, w.runner.count(apiProd, apply))
			w.push(tgt("api", "staging", digest("v1")), tgt("api", "production", stableAfter("staging"), digest("v4")))
			assert.Equal(t, 3, w.runner.count(apiProd, apply), "staging unchanged by the push is converged on it")
		},
		"manualApproval waits, then applies once": func(t *testing.T, w *world) {
			w.push(tgt("api", "production", manualApproval(false, 1)))
			assert.Equal(t, store.StatusWaitingManualApproval, w.status(apiProd))
			assert.Zero(t, w.runner.count(apiProd, apply))
			approved, err := w.approve("production", "alice")
			require.NoError(t, err)
			assert.Equal(t, []desired.Key{apiProd}, approved)
			w.settle()
			assert.Equal(t, store.StatusConverged, w.status(apiProd))
			w.after(time.Hour)
			assert.Equal(t, 1, w.runner.count(apiProd, apply))
			assert.Equal(t, []string{"alice"}, w.runs(apiProd)[0].ApprovedBy)
		},
		"manualApproval without everyAction: a drift-caused apply needs no new approval": func(t *testing.T, w *world) {
			w.runner.exits(apiProd, fetch, 2, 0, 2, 0)
			w.push(tgt("api", "production", withFetch, manualApproval(false, 1)))
			_, err := w.approve("production", "alice")
			require.NoError(t, err)
			w.settle()
			w.after(30*s + steadyMax(5*m))
			assert.Equal(t, 2, w.runner.count(apiProd, apply))
		},
		"everyAction: the drift-caused apply needs its own approval": func(t *testing.T, w *world) {
			w.runner.exits(apiProd, fetch, 2, 0, 2, 0)
			w.push(tgt("api", "production", withFetch, manualApproval(true, 1)))
			_, err := w.approve("production", "alice")
			require.NoError(t, err)
			w.settle()
			w.after(30 * s)
			require.Equal(t, store.StatusConverged, w.status(apiProd))
			w.after(steadyMax(5 * m))
			assert.Equal(t, store.StatusWaitingManualApproval, w.status(apiProd), "drift waits for a new approval")
			assert.Equal(t, 1, w.runner.count(apiProd, apply))
			_, err = w.approve("production", "alice")
			require.NoError(t, err, "alice's first approval was used by the first apply")
			w.settle()
			assert.Equal(t, 2, w.runner.count(apiProd, apply))
		},
		"requireApprovalBeforeApply: every apply needs its own approval": func(t *testing.T, w *world) {
			w.runner.exits(apiProd, fetch, 2, 0, 2, 0)
			w.push(tgt("api", "production", withFetch, policy(func(p *desired.Policy) { p.RequireApprovalBeforeApply = true })))
			assert.Equal(t, store.StatusWaitingManualApproval, w.status(apiProd))
			_, err := w.approve("production", "alice")
			require.NoError(t, err)
			w.settle()
			w.after(30*s + steadyMax(5*m))
			assert.Equal(t, store.StatusWaitingManualApproval, w.status(apiProd))
			assert.Equal(t, 1, w.runner.count(apiProd, apply))
		},
		"minApprovers 2 needs two different people": func(t *testing.T, w *world) {
			w.push(tgt("api", "production", manualApproval(false, 2)))
			_, err := w.approve("production", "alice")
			require.NoError(t, err)
			w.settle()
			st := w.state(apiProd)
			assert.Equal(t, store.StatusWaitingManualApproval, st.Status)
			assert.Contains(t, st.Message, "1 of 2 approvers (alice)")
			_, err = w.approve("production", "alice")
			var refused *RefusedError
			require.ErrorAs(t, err, &refused)
			assert.Contains(t, refused.Reason, "alice already approved")
			w.settle()
			assert.Zero(t, w.runner.count(apiProd, apply))
			_, err = w.approve("production", "bob")
			require.NoError(t, err)
			w.settle()
			assert.Equal(t, 1, w.runner.count(apiProd, apply))
			assert.Equal(t, []string{"alice", "bob"}, w.runs(apiProd)[0].ApprovedBy)
		},
		"approval is refused with a reason when nothing waits": func(t *testing.T, w *world) {
			w.push(tgt("api", "staging"), tgt("api", "production", manualApproval(false, 1)))
			_, err := w.approve("staging", "alice")
			var refused *RefusedError
			require.ErrorAs(t, err, &refused)
			assert.Equal(t, "nothing in shop/staging is waiting for approval", refused.Reason)
			_, err = w.approve("production", "alice", "web")
			require.ErrorAs(t, err, &refused)
			keys, err := w.approve("production", "alice", "api")
			require.NoError(t, err)
			assert.Equal(t, []desired.Key{apiProd}, keys)
		},
		"retryableExitCodes: apply asked to try again is not a failure": func(t *testing.T, w *world) {
			w.runner.exits(api, apply, 75, 0)
			w.push(tgt("api", "staging", policy(func(p *desired.Policy) { p.RetryableExitCodes = []int{75} })))
			assert.Equal(t, store.StatusConverging, w.status(api))
			w.after(30 * s)
			assert.Equal(t, []time.Duration{0, 30 * s}, w.runner.times(api, apply))
			assert.Equal(t, store.StatusConverged, w.status(api))
		},
		"failed apply: FAILED, retried with exponential backoff up to maxAttempts": func(t *testing.T, w *world) {
			w.runner.exits(api, apply, 1)
			w.push(tgt("api", "staging", policy(func(p *desired.Policy) {
				p.Retry = config.RetryPolicy{BaseInterval: 10 * s, MaxInterval: 15 * s, MaxAttempts: 3}
			})))
			assert.Equal(t, store.StatusFailed, w.status(api))
			w.after(time.Hour)
			times := w.runner.times(api, apply)
			require.Len(t, times, 3)
			assert.InDelta(t, 10*s, times[1]-times[0], float64(s), "first retry after baseInterval")
			assert.InDelta(t, 15*s, times[2]-times[1], float64(1500*time.Millisecond), "then doubled, capped at maxInterval")
			st := w.state(api)
			assert.Equal(t, store.StatusFailed, st.Status)
			assert.Contains(t, st.Message, "gave up after 3 attempts")
		},
		"a target that gave up starts its attempts afresh when rechecked by name (Re-run)": func(t *testing.T, w *world) {
			w.runner.exits(api, apply, 1)
			w.push(tgt("api", "staging", policy(func(p *desired.Policy) {
				p.Retry = config.RetryPolicy{BaseInterval: 10 * s, MaxInterval: 10 * s, MaxAttempts: 2}
			})))
			w.after(time.Hour)
			require.Len(t, w.runner.times(api, apply), 2)
			require.NoError(t, w.e.Recheck(w.ctx))
			w.after(time.Hour)
			require.Len(t, w.runner.times(api, apply), 2, "a recheck of everything does not retry what gave up")

			require.NoError(t, w.e.Recheck(w.ctx, api))
			w.after(time.Hour)
			assert.Len(t, w.runner.times(api, apply), 4, "two attempts again")
			assert.Contains(t, w.state(api).Message, "gave up after 2 attempts")
			w.runner.exits(api, apply, 0)
			require.NoError(t, w.e.Recheck(w.ctx, api))
			w.after(time.Second)
			assert.Equal(t, store.StatusConverged, w.status(api))
		},
		"failed apply is retried until it succeeds; a runner error is a failure too": func(t *testing.T, w *world) {
			w.runner.fail(api, apply, errors.New("no such cluster"))
			w.push(tgt("api", "staging"))
			st := w.state(api)
			assert.Equal(t, store.StatusFailed, st.Status)
			assert.Contains(t, st.Message, "no such cluster")
			w.runner.fail(api, apply, nil)
			w.after(30 * s)
			assert.Equal(t, store.StatusConverged, w.status(api))
			assert.Zero(t, w.state(api).Attempts)
		},
		"getInfo runs after apply and every getInfo pollInterval; its outputs are recorded": func(t *testing.T, w *world) {
			w.runner.results(api, getInfo, runner.Result{Stdout: []byte(`{"outputs":[{"name":"URL","text":"https://api"}]}`)})
			w.push(tgt("api", "staging", withGetInfo))
			st := w.state(api)
			assert.Equal(t, []store.InfoOutput{{Name: "URL", Text: "https://api"}}, st.Info)
			w.after(5 * m)
			assert.Equal(t, []time.Duration{0, 5 * m}, w.runner.times(api, getInfo))
		},
		"getInfo failure changes nothing": func(t *testing.T, w *world) {
			w.runner.results(api, getInfo,
				runner.Result{Stdout: []byte(`{"outputs":[{"name":"URL","text":"https://api"}]}`)},
				runner.Result{ExitCode: 1, Stdout: []byte(`{"outputs":[]}`)},
				runner.Result{Stdout: []byte(`not json`)})
			w.push(tgt("api", "staging", withGetInfo))
			before := w.state(api)
			reports := len(w.reporter.got)
			w.after(10 * m)
			after := w.state(api)
			assert.Len(t, w.runner.times(api, getInfo), 3)
			assert.Equal(t, before.Info, after.Info)
			assert.Equal(t, before.Status, after.Status)
			assert.Equal(t, reports, len(w.reporter.got), "nothing to report")
		},
		"STRUCTURED_OUTPUT: converged when every object SUCCEEDED at one active, non-drifted desired version": func(t *testing.T, w *world) {
			obj := func(status, version string, drifted bool) runner.Result {
				return runner.Result{Stdout: []byte(`{"objects":[{"name":"vm-1","objectType":"VM","status":"` + status +
					`","versions":[{"version":"` + version + `","active":true,"drifted":` + map[bool]string{true: "true", false: "false"}[drifted] + `}]}]}`)}
			}
			w.runner.results(api, fetch, obj("SUCCEEDED", "v1", false), obj("PENDING", "v2", false), obj("SUCCEEDED", "v2", false),
				obj("SUCCEEDED", "v2", true), obj("SUCCEEDED", "v2", false))
			w.push(tgt("api", "staging", withFetch, applyID("v2"), policy(func(p *desired.Policy) { p.FetchMode = config.FetchModeStructuredOutput })))
			assert.Equal(t, 1, w.runner.count(api, apply), "an older active version is drift")
			w.after(30 * s)
			assert.Equal(t, store.StatusConverging, w.status(api), "a PENDING object is not converged")
			w.after(30 * s)
			assert.Equal(t, store.StatusConverged, w.status(api))
			w.after(steadyMax(5 * m))
			assert.Equal(t, 2, w.runner.count(api, apply), "a drifted active version is drift")
		},
		"STRUCTURED_OUTPUT: output that is not JSON is a fetch error": func(t *testing.T, w *world) {
			w.runner.results(api, fetch, runner.Result{Stdout: []byte("oops")})
			w.push(tgt("api", "staging", withFetch, policy(func(p *desired.Policy) { p.FetchMode = config.FetchModeStructuredOutput })))
			st := w.state(api)
			assert.Equal(t, store.StatusFailed, st.Status)
			assert.Contains(t, st.Message, "not valid JSON")
			assert.Zero(t, w.runner.count(api, apply))
		},
		"a push that changes nothing for a target leaves it untouched": func(t *testing.T, w *world) {
			w.runner.exits(api, fetch, 2, 0)
			w.push(tgt("api", "staging", withFetch), tgt("web", "staging", withFetch))
			w.after(30 * s)
			before, reports, calls := w.state(api), len(w.reporter.got), len(w.runner.calls)
			w.push(tgt("api", "staging", withFetch), tgt("web", "staging", withFetch, digest("v2")))
			after := w.state(api)
			assert.Equal(t, store.StatusConverged, after.Status)
			assert.Equal(t, before.UpdatedAt, after.UpdatedAt)
			assert.Equal(t, before.Target.Commit, after.Target.Commit)
			assert.Equal(t, 1, w.runner.count(api, apply))
			assert.Equal(t, calls+1, len(w.runner.calls), "only web's fetch ran")
			assert.Equal(t, store.StatusPending, w.reporter.got[reports].Status, "only web was reported")
			assert.Equal(t, web, w.reporter.got[reports].Key())
		},
		"a removed service stops: DELETED, nothing is run": func(t *testing.T, w *world) {
			w.push(tgt("api", "staging", withFetch), tgt("web", "staging", withFetch, withGetInfo))
			calls := w.runner.count(web, fetch)
			w.push(tgt("api", "staging", withFetch))
			assert.Equal(t, store.StatusDeleted, w.status(web))
			w.after(time.Hour)
			assert.Equal(t, calls, w.runner.count(web, fetch))
			assert.Equal(t, 1, w.runner.count(web, getInfo))
			assert.Equal(t, 13, w.runner.count(api, fetch), "the others carry on")
		},
		"a newer desired state replaces the old without killing the running apply": func(t *testing.T, w *world) {
			w.runner.BeforeRun = func(spec runner.Spec) {
				if spec.Action == apply && spec.Commit == "c1" {
					w.set(tgt("api", "staging", digest("v2")))
				}
			}
			w.push(tgt("api", "staging"))
			runs := w.runs(api)
			require.Len(t, runs, 2)
			assert.Equal(t, "c2", runs[0].Commit)
			assert.Equal(t, "c1", runs[1].Commit)
			assert.Equal(t, 0, runs[1].ExitCode, "the old apply ran to its end")
			assert.Contains(t, runs[1].Note, "replaced while running")
			st := w.state(api)
			assert.Equal(t, store.StatusConverged, st.Status)
			assert.Equal(t, store.ReplacedState{Commit: "c1", Digest: "v1", Status: store.StatusApplying, At: t0}, st.Replaced)
		},
		"every job run is recorded: target, action, commit, start, end, exit code, output tail": func(t *testing.T, w *world) {
			w.runner.exits(api, fetch, 2, 0)
			w.push(tgt("api", "staging", withFetch))
			w.after(30 * s)
			runs := w.runs(api)
			require.Len(t, runs, 3)
			got := []store.JobRun{runs[2], runs[1], runs[0]}
			for i, want := range []struct {
				action runner.Action
				code   int
				at     time.Duration
			}{{fetch, 2, 0}, {apply, 0, 0}, {fetch, 0, 30 * s}} {
				assert.Equal(t, want.action, got[i].Action)
				assert.Equal(t, want.code, got[i].ExitCode)
				assert.Equal(t, api, got[i].Key)
				assert.Equal(t, "c1", got[i].Commit)
				assert.Equal(t, t0.Add(want.at), got[i].Started)
				assert.Equal(t, t0.Add(want.at), got[i].Finished)
			}
			assert.Equal(t, "fetch exited 2", got[0].OutputTail)
		},
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) { test(t, newWorld(t)) })
	}
}

func TestDeleteAll(t *testing.T) {
	w := newWorld(t)
	w.push(tgt("api", "staging"), tgt("web", "production", manualApproval(false, 1)))
	require.NoError(t, w.e.DeleteAll(w.ctx, "repository removed from the App"))
	for _, k := range []desired.Key{api, key("web", "production")} {
		st := w.state(k)
		assert.Equal(t, store.StatusDeleted, st.Status)
		assert.Equal(t, "repository removed from the App", st.Message)
	}
	w.after(time.Hour)
	assert.Equal(t, 1, w.runner.count(api, apply), "nothing more runs")
	_, err := w.approve("production", "alice")
	assert.Error(t, err, "nothing waits any more")
}

// An approval names the commit it is for: targets whose desired state
// another commit brought are not approved by it. The same approval again
// (a retried webhook, by its URL) is taken as done, not refused.
func TestApprovalOfACommit(t *testing.T) {
	w := newWorld(t)
	c1 := w.push(tgt("api", "production", manualApproval(false, 1)), tgt("web", "production", manualApproval(false, 1)))
	c2 := w.push(tgt("api", "production", manualApproval(false, 1)), tgt("web", "production", manualApproval(false, 1), digest("v2")))
	req := ApprovalRequest{Application: "shop", ReleaseChannel: "production", Who: "alice", Commit: c2, Source: "comment", URL: "https://x/pull/1#issuecomment-7"}
	keys, err := w.e.Approve(w.ctx, req)
	require.NoError(t, err)
	assert.Equal(t, []desired.Key{key("web", "production")}, keys, "api's desired state is commit %s's", c1)
	keys, err = w.e.Approve(w.ctx, req)
	require.NoError(t, err, "the same comment again")
	assert.Equal(t, []desired.Key{key("web", "production")}, keys)
	w.settle()
	assert.Equal(t, 1, w.runner.count(key("web", "production"), apply))
	assert.Zero(t, w.runner.count(apiProd, apply))
	approvals, err := w.store.CurrentApprovals(w.ctx)
	require.NoError(t, err)
	require.Len(t, approvals, 1, "recorded once")
	assert.Equal(t, "comment", approvals[0].Source)
	assert.Equal(t, req.URL, approvals[0].URL)
	_, err = w.e.Approve(w.ctx, ApprovalRequest{Application: "shop", ReleaseChannel: "production", Who: "alice", Commit: c1})
	assert.NoError(t, err, "api waits on c1: approved by naming c1")
}

// Drift that no apply fixes is re-applied ever more rarely: after the
// first re-apply, at grace period × 2ⁿ up to 24 h; the status says how
// many applies it took and when the next is.
func TestEndlessDriftBacksOff(t *testing.T) {
	w := newWorld(t)
	w.runner.exits(api, fetch, repeat(2, 20000)...)
	w.push(tgt("api", "staging", withFetch))
	w.after(31 * m)
	assert.Equal(t, []time.Duration{0, 10 * m, 30 * m}, w.runner.times(api, apply))
	st := w.state(api)
	assert.Equal(t, store.StatusConverging, st.Status)
	assert.Equal(t, 2, st.Reapplies)
	assert.Equal(t, "still drifting after 3 applies; next apply at 2026-05-01T13:10:00Z", st.Message)
	var notes []string
	for _, r := range w.runs(api) {
		if r.Action == apply {
			notes = append(notes, r.Note)
		}
	}
	assert.ElementsMatch(t, []string{"fetch reports drift", "convergence grace period of 10m0s exceeded: apply again", "still drifting after 2 applies: apply again"}, notes)

	w.after(4000*m - 31*m)
	assert.Equal(t, []time.Duration{0, 10 * m, 30 * m, 70 * m, 150 * m, 310 * m, 630 * m, 1270 * m, 2550 * m, 2550*m + 24*time.Hour},
		w.runner.times(api, apply), "doubling from the grace period, capped at 24 h")

	// Converging ends it: the next drift starts from the grace period.
	w.runner.exits(api, fetch, 0)
	w.after(time.Minute)
	assert.Equal(t, store.StatusConverged, w.status(api))
	assert.Zero(t, w.state(api).Reapplies)
}
