package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/server"
	"github.com/pvnbot/pvnbot/internal/webhook"
)

// percentile is the p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p/100))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// signedPost sends a webhook as GitHub does and returns how long the bot
// took to answer.
func signedPost(client *http.Client, url, secret, event, guid string, payload []byte) (time.Duration, int, error) {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(payload)
	req, err := http.NewRequest("POST", url, bytes.NewReader(payload))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", guid)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	start := time.Now()
	resp, err := client.Do(req)
	d := time.Since(start)
	if err != nil {
		return d, 0, err
	}
	resp.Body.Close()
	return d, resp.StatusCode, nil
}

// BenchmarkWebhookAck sends 200 signed push deliveries a second for 10
// seconds (to a branch that is not deployed, so that the work behind them is
// the queue's and the store's) and reports the latency of the answers: a
// delivery is answered once it is stored (synchronous=FULL). Goal: p99
// under 5 ms.
func BenchmarkWebhookAck(b *testing.B) {
	r := newRig(b)
	rp := r.addRepo("acme/deploys", "web")
	r.start(server.Options{})
	r.untilRun(rp, "pvnbot: shop/staging", rp.head, "success")
	payload := r.gh.PushPayload(rp.Repo, "feature", rp.head, rp.head)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	const rate, seconds = 200, 10
	var lat []time.Duration
	n := 0
	for b.Loop() {
		var mu sync.Mutex
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / rate)
		for range rate * seconds {
			<-tick.C
			n++
			guid := fmt.Sprintf("bench-%d", n)
			wg.Go(func() {
				d, status, err := signedPost(client, r.hookAddr, r.gh.WebhookSecret(), "push", guid, payload)
				if err != nil || status != http.StatusOK {
					b.Errorf("delivery %s: %d %v", guid, status, err)
					return
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			})
		}
		tick.Stop()
		wg.Wait()
	}
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}

// countWrites counts the fake's check-run writes and REST calls since a
// point.
func countWrites(r *rig, since int) (writes, calls int) {
	reqs := r.gh.Requests()[since:]
	for _, q := range reqs {
		if strings.Contains(q.Path, "/check-runs") && (q.Method == "POST" || q.Method == "PATCH") {
			writes++
		}
	}
	return writes, len(reqs)
}

// BenchmarkAPIWritesPerPush pushes a commit that changes every service of
// a repository with two release channels (staging deploys, production waits
// for approval) and counts the GitHub API writes and calls it costs, for 1
// and for 100 services. Goal: the same number of check-run writes.
func BenchmarkAPIWritesPerPush(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			r := newRig(b)
			b.Setenv("E2E_STATE", r.world)
			var names []string
			for i := range n {
				names = append(names, fmt.Sprintf("svc-%03d", i))
			}
			rp := r.addRepo("acme/deploys", names...)
			r.start(server.Options{})
			r.untilRun(rp, "pvnbot: shop/production", rp.head, "action_required")
			var writes, calls int
			version := 1
			for b.Loop() {
				version++
				files := map[string]string{}
				for _, name := range names {
					files["services/"+name+".pvn.yaml"] = service(name, strconv.Itoa(version))
				}
				since := len(r.gh.Requests())
				sha := r.push(rp, files)
				r.untilRun(rp, "pvnbot: shop/staging", sha, "success")
				r.untilRun(rp, "pvnbot: shop/production", sha, "action_required")
				w, c := countWrites(r, since)
				writes, calls = writes+w, calls+c
			}
			b.ReportMetric(float64(writes)/float64(b.N), "check-run-writes/push")
			b.ReportMetric(float64(calls)/float64(b.N), "api-calls/push")
		})
	}
}

// BenchmarkSteadyStateWrites has 100 converged targets fetched again every
// steady-state poll (0.3 s) with nothing changed, and counts the GitHub API
// writes meanwhile. Goal: zero.
func BenchmarkSteadyStateWrites(b *testing.B) {
	r := newRig(b)
	var names []string
	for i := range 100 {
		names = append(names, fmt.Sprintf("svc-%03d", i))
	}
	rp := r.addRepo("acme/deploys", names...)
	rp.commit(map[string]string{"shop.pvn.yaml": strings.Replace(runtimeFiles(strings.ReplaceAll(rp.FullName, "/", "_")), "steadyStatePollInterval: 1h", "steadyStatePollInterval: 0.3s", 1)}, "poll often")
	r.start(server.Options{})
	r.settled(rp)
	st := r.repoStore(rp)
	fetches := func() int {
		runs, err := st.Runs(context.Background(), keyOf("svc-000", "staging"), 0)
		require.NoError(b, err)
		return len(runs)
	}
	var writes int
	for b.Loop() {
		since, before := len(r.gh.Requests()), fetches()
		r.until("three more steady-state polls", func() bool { return fetches() >= before+3 })
		w, _ := countWrites(r, since)
		writes += w
	}
	b.ReportMetric(float64(writes)/float64(b.N), "writes/3-polls-of-100-targets")
}

// BenchmarkPushToFirstJob pushes 50 commits, each changing one service of
// a repository of 100, and reports the time from the push delivery to the
// first job started for the commit. Goal: p99 under 1 s.
func BenchmarkPushToFirstJob(b *testing.B) {
	r := newRig(b)
	var names []string
	for i := range 100 {
		names = append(names, fmt.Sprintf("svc-%03d", i))
	}
	rp := r.addRepo("acme/deploys", names...)
	place := strings.ReplaceAll(rp.FullName, "/", "_")
	// Each fetch first notes when it started, by commit.
	timed := strings.Replace(runtimeFiles(place), `cmd: ['test "$(cat`, `cmd: ['date +%s%N >> "$E2E_STATE/`+place+`/start-$PVN_COMMIT"; test "$(cat`, 1)
	rp.commit(map[string]string{"shop.pvn.yaml": timed}, "timed")
	r.start(server.Options{Queue: webhook.QueueOptions{}})
	r.untilRun(rp, "pvnbot: shop/production", rp.head, "action_required")
	var lat []time.Duration
	version := 1
	for b.Loop() {
		for i := range 50 {
			version++
			name := names[i%len(names)]
			before := rp.head
			sha := rp.commit(map[string]string{"services/" + name + ".pvn.yaml": service(name, strconv.Itoa(version))}, "bump")
			payload := r.gh.PushPayload(rp.Repo, "main", before, sha)
			sent := time.Now()
			_, status, err := r.gh.Deliver("push", payload)
			require.NoError(b, err)
			require.Equal(b, 200, status)
			file := filepath.Join(rp.world, "start-"+sha)
			var started time.Time
			r.until("the commit's first job", func() bool {
				data, err := os.ReadFile(file)
				if err != nil {
					return false
				}
				first, _, _ := strings.Cut(string(data), "\n")
				ns, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
				if err != nil {
					return false
				}
				started = time.Unix(0, ns)
				return true
			})
			lat = append(lat, started.Sub(sent))
			r.untilRun(rp, "pvnbot: shop/staging", sha, "success")
		}
	}
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
}

func keyOf(service, channel string) desired.Key {
	return desired.Key{Application: "shop", Service: service, ReleaseChannel: channel}
}
