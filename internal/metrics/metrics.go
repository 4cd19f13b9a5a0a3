// Package metrics is pvnbot's Prometheus metrics (namespace pvnbot_): the
// webhook deliveries and their queue, the jobs, the targets by status, the
// time from a commit's ingestion to its channel converged, the approvals,
// and the GitHub API calls and rate limits (bridged from go-githubapp's
// client middleware, which measures them).
package metrics

import (
	"context"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/palantir/go-githubapp/githubapp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	gometrics "github.com/rcrowley/go-metrics"

	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

const namespace = "pvnbot"

// Metrics holds pvnbot's collectors in a registry of its own.
type Metrics struct {
	registry *prometheus.Registry

	deliveries  *prometheus.CounterVec
	jobRuns     *prometheus.CounterVec
	jobSeconds  *prometheus.HistogramVec
	converged   *prometheus.HistogramVec
	approvals   *prometheus.CounterVec
	apiRequests *prometheus.CounterVec

	// github is the registry go-githubapp's ClientMetrics writes to.
	github gometrics.Registry

	mu     sync.Mutex
	events map[string]bool // of Events
}

// New registers every collector, and the Go runtime's and the build's.
func New() *Metrics {
	m := &Metrics{registry: prometheus.NewRegistry(), github: gometrics.NewRegistry()}
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "webhook_deliveries_total",
		Help: "Webhook deliveries by event and outcome: received (stored), duplicate (seen before, not processed again), refused (bad signature or headers), failed (an attempt to process it failed), given_up (failed too often).",
	}, []string{"event", "outcome"})
	m.jobRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "job_runs_total",
		Help: "Jobs run, by runtime, action (apply, fetch, getInfo) and result: success (exit 0), drift (fetch exit 2), failure (another exit code), error (could not run or was stopped).",
	}, []string{"runtime", "action", "result"})
	m.jobSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "job_duration_seconds", Help: "How long jobs ran, by runtime and action.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
	}, []string{"runtime", "action"})
	m.converged = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "commit_to_converged_seconds",
		Help:    "Seconds from a commit's desired state taken to every target of a release channel converged on it, by repository.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400},
	}, []string{"repo"})
	m.approvals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "approvals_total",
		Help: "Approvals asked for, by outcome (accepted, refused) and reason of a refusal.",
	}, []string{"outcome", "reason"})
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "github_api_requests_total",
		Help: "GitHub REST API calls by method, endpoint and status code.",
	}, []string{"method", "endpoint", "status"})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info", Help: "pvnbot's build: version and Go version; always 1.",
	}, []string{"version", "goversion"})
	version, goVersion := "devel", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if v := bi.Main.Version; v != "" {
			version = v
		}
	}
	info.WithLabelValues(version, goVersion).Set(1)
	m.registry.MustRegister(m.deliveries, m.jobRuns, m.jobSeconds, m.converged, m.approvals, m.apiRequests, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		githubBridge{m.github})
	return m
}

// Register adds collectors (the targets', the queue's).
func (m *Metrics) Register(cs ...prometheus.Collector) { m.registry.MustRegister(cs...) }

// Handler serves the metrics in Prometheus's formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// outcomes are a delivery's, as webhook.QueueOptions.Observe and Refused
// tell them.
var outcomes = []string{"received", "duplicate", "refused", "failed", "given_up"}

// Events makes the series of each event's outcomes, at 0: an alert on
// increase() then sees the first delivery given up, and refused
// deliveries of other events count as "other".
func (m *Metrics) Events(events ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = map[string]bool{}
	for _, e := range append(events, "other") {
		m.events[e] = true
		for _, o := range outcomes {
			m.deliveries.WithLabelValues(e, o)
		}
	}
}

// Delivery counts a webhook delivery's outcome.
func (m *Metrics) Delivery(event, outcome string) { m.deliveries.WithLabelValues(event, outcome).Inc() }

// Refused counts a delivery refused before its signature was checked: its
// event header is anyone's, so it is a label only when it names an event
// of Events, else "other".
func (m *Metrics) Refused(event string) {
	m.mu.Lock()
	known := m.events[event]
	m.mu.Unlock()
	if !known {
		event = "other"
	}
	m.deliveries.WithLabelValues(event, "refused").Inc()
}

// Approval counts an approval asked for; reason is empty when accepted.
func (m *Metrics) Approval(reason string) {
	if reason == "" {
		m.approvals.WithLabelValues("accepted", "").Inc()
		return
	}
	m.approvals.WithLabelValues("refused", reason).Inc()
}

// Runner counts and times the jobs run runs.
func (m *Metrics) Runner(run reconcile.Runner) reconcile.Runner { return instrumented{run, m} }

type instrumented struct {
	reconcile.Runner
	m *Metrics
}

func (r instrumented) Run(ctx context.Context, spec runner.Spec) (runner.Result, error) {
	start := time.Now()
	res, err := r.Runner.Run(ctx, spec)
	result := "success"
	switch {
	case err != nil || res.ExecError != "":
		result = "error"
	case spec.Action == runner.ActionFetch && res.ExitCode == runner.ExitCodeDrift:
		result = "drift"
	case res.ExitCode != 0:
		result = "failure"
	}
	r.m.jobRuns.WithLabelValues(spec.Runtime, string(spec.Action), result).Inc()
	r.m.jobSeconds.WithLabelValues(spec.Runtime, string(spec.Action)).Observe(time.Since(start).Seconds())
	return res, err
}

// ClientMiddleware is what the GitHub clients go through: go-githubapp's
// ClientMetrics, and the calls by endpoint. (go-githubapp's
// WithClientMiddleware takes all middleware in one call.)
func (m *Metrics) ClientMiddleware() githubapp.ClientOption {
	return githubapp.WithClientMiddleware(githubapp.ClientMetrics(m.github), m.byEndpoint)
}

func (m *Metrics) byEndpoint(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		res, err := next.RoundTrip(r)
		status := "error"
		if res != nil {
			status = strconv.Itoa(res.StatusCode)
		}
		m.apiRequests.WithLabelValues(r.Method, Endpoint(r.URL.EscapedPath()), status).Inc()
		return res, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var (
	sha     = regexp.MustCompile(`^[0-9a-f]{40}$`)
	number  = regexp.MustCompile(`^[0-9]+$`)
	namedBy = map[string]string{"repos": "{owner}/{repo}", "collaborators": "{user}", "branches": "{branch}", "commits": "{ref}", "users": "{user}", "orgs": "{org}"}
)

// Endpoint is a REST path with its names and numbers replaced:
// /repos/{owner}/{repo}/check-runs/{id}.
func Endpoint(path string) string {
	if i := strings.Index(path, "/api/v3/"); i >= 0 {
		path = path[i+len("/api/v3"):]
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := 0; i < len(parts); i++ {
		switch p := parts[i]; {
		case namedBy[p] != "" && i+1 < len(parts):
			n := strings.Count(namedBy[p], "/") + 1
			parts = append(parts[:i+1], append([]string{namedBy[p]}, parts[min(len(parts), i+1+n):]...)...)
			i++
		case number.MatchString(p):
			parts[i] = "{id}"
		case sha.MatchString(p):
			parts[i] = "{sha}"
		}
	}
	return "/" + strings.Join(parts, "/")
}

// githubBridge reads go-githubapp's go-metrics registry at each scrape:
// its request counters by status class and each installation's rate limit.
type githubBridge struct{ r gometrics.Registry }

var (
	ghRequests  = prometheus.NewDesc(namespace+"_github_requests_total", "GitHub API requests by status class (2xx, 3xx, 4xx, 5xx), as go-githubapp's ClientMetrics counts them.", []string{"class"}, nil)
	ghCached    = prometheus.NewDesc(namespace+"_github_requests_cached_total", "GitHub API requests answered from the HTTP cache, as go-githubapp's ClientMetrics counts them.", nil, nil)
	ghRateLimit = prometheus.NewDesc(namespace+"_github_rate_limit", "Each installation's GitHub rate limit, from the last answer's headers: limit, remaining, used, reset (Unix time).", []string{"installation", "kind"}, nil)
	installed   = regexp.MustCompile(`^github\.rate\.(\w+)\[installation:(\d+)\]$`)
	class       = regexp.MustCompile(`^` + regexp.QuoteMeta(githubapp.MetricsKeyRequests) + `\.([1-5]xx)$`)
)

func (g githubBridge) Describe(ch chan<- *prometheus.Desc) {
	ch <- ghRequests
	ch <- ghCached
	ch <- ghRateLimit
}

func (g githubBridge) Collect(ch chan<- prometheus.Metric) {
	g.r.Each(func(name string, metric any) {
		switch v := metric.(type) {
		case gometrics.Counter:
			if m := class.FindStringSubmatch(name); m != nil {
				ch <- prometheus.MustNewConstMetric(ghRequests, prometheus.CounterValue, float64(v.Count()), m[1])
			} else if name == githubapp.MetricsKeyRequestsCached {
				ch <- prometheus.MustNewConstMetric(ghCached, prometheus.CounterValue, float64(v.Count()))
			}
		case gometrics.Gauge:
			if m := installed.FindStringSubmatch(name); m != nil {
				ch <- prometheus.MustNewConstMetric(ghRateLimit, prometheus.GaugeValue, float64(v.Value()), m[2], m[1])
			}
		}
	})
}

// Targets collects the targets by repository, application and status, read
// at each scrape from snapshot.
func Targets(snapshot func() map[string][]store.TargetState) prometheus.Collector {
	return targets{snapshot}
}

type targets struct {
	snapshot func() map[string][]store.TargetState
}

var targetsDesc = prometheus.NewDesc(namespace+"_targets", "Targets by repository, application and status.", []string{"repo", "application", "status"}, nil)

func (t targets) Describe(ch chan<- *prometheus.Desc) { ch <- targetsDesc }

func (t targets) Collect(ch chan<- prometheus.Metric) {
	for repo, states := range t.snapshot() {
		type key struct{ app, status string }
		n := map[key]int{}
		for _, st := range states {
			n[key{st.Key().Application, string(st.Status)}]++
		}
		for k, c := range n {
			ch <- prometheus.MustNewConstMetric(targetsDesc, prometheus.GaugeValue, float64(c), repo, k.app, k.status)
		}
	}
}

// Queue collects the webhook queue's depth and the age of its oldest
// delivery, read at each scrape from counts; when counts fails, the scrape
// says so rather than show an empty queue.
func Queue(counts func() (store.DeliveryCounts, error), now func() time.Time) prometheus.Collector {
	return queue{counts, now}
}

type queue struct {
	counts func() (store.DeliveryCounts, error)
	now    func() time.Time
}

var (
	queueDepth  = prometheus.NewDesc(namespace+"_webhook_queue_depth", "Webhook deliveries stored and not yet processed.", nil, nil)
	queueOldest = prometheus.NewDesc(namespace+"_webhook_queue_oldest_seconds", "Age of the oldest delivery not yet processed; 0 when none waits.", nil, nil)
	queueFailed = prometheus.NewDesc(namespace+"_webhook_deliveries_given_up", "Deliveries given up after failing too often, still kept.", nil, nil)
)

func (q queue) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepth
	ch <- queueOldest
	ch <- queueFailed
}

func (q queue) Collect(ch chan<- prometheus.Metric) {
	c, err := q.counts()
	if err != nil {
		for _, d := range []*prometheus.Desc{queueDepth, queueOldest, queueFailed} {
			ch <- prometheus.NewInvalidMetric(d, err)
		}
		return
	}
	age := 0.0
	if !c.OldestPending.IsZero() {
		age = q.now().Sub(c.OldestPending).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(queueDepth, prometheus.GaugeValue, float64(c.Pending))
	ch <- prometheus.MustNewConstMetric(queueOldest, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(queueFailed, prometheus.GaugeValue, float64(c.Failed))
}
