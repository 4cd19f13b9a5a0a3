package kubee2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/store"
)

// BenchmarkConvergeRoundTrip measures one engine-level convergence on the
// test plane: from SetDesired of a new version to CONVERGED, through three
// Jobs (fetch finds drift, apply, fetch finds none). The fetch poll interval
// is 1ms, so the figure is the engine's and the backend's overhead plus
// three Job round trips.
//
//	go test -run '^$' -bench ConvergeRoundTrip -benchtime 20x ./internal/kubee2e/
func BenchmarkConvergeRoundTrip(b *testing.B) {
	work := b.TempDir()
	deployed := filepath.Join(work, "deployed")
	apply := script(b, work, "apply.sh", fmt.Sprintf(`printf '%%s' "$PVN_DESIRED_VERSION" > %q`+"\n", deployed))
	fetch := script(b, work, "fetch.sh", fmt.Sprintf(`[ "$(cat %q 2>/dev/null)" = "$PVN_DESIRED_VERSION" ] || exit 2`+"\n", deployed))

	rt := runtimeName("bench")
	r := newRepo(b)
	r.write("runtimes/rt.pvn.yaml", fmt.Sprintf(`runtime:
  name: %s
  custom:
    type: GENERIC
    proxyRuntime:
      runtime: %s
    apply:
      taskConfig:
        program:
          image: example.org/tools:1
          entrypoint: [sh]
          cmd: [%q]
    fetch:
      taskConfig:
        program:
          image: example.org/tools:1
          entrypoint: [sh]
          cmd: [%q]
      pollInterval: 1ms
    applyId: "{{.Params.version}}"
    parameters:
    - name: version
      string: {}
`, rt, cluster, apply, fetch))
	r.demo(rt)
	key := desired.Key{Application: "demo", Service: "shop", ReleaseChannel: "staging"}
	release := func(n int) (string, []desired.Target) {
		r.write("services/shop.pvn.yaml", fmt.Sprintf(`service:
  name: shop
  application: demo
  customRuntime:
    parameterValues:
    - {name: version, string: "v%d"}
`, n))
		commit := commitOf(1000 + n)
		return commit, r.targets(commit)
	}
	convergedAt := func(version string) func(map[desired.Key]store.TargetState) bool {
		return func(s map[desired.Key]store.TargetState) bool {
			return s[key].Status == store.StatusConverged && s[key].Target.ApplyID == version
		}
	}

	// The first version makes the namespace, outside the measure.
	commit, targets := release(0)
	bot := startBot(b, store.NewMemory().Repo(repoName), commit, targets)
	bot.rec.waitFor(b, "first convergence", convergedAt("v0"))

	var took []time.Duration
	n := 0
	for b.Loop() {
		n++
		commit, targets := release(n)
		start := time.Now()
		if err := bot.engine.SetDesired(b.Context(), commit, targets); err != nil {
			b.Fatal(err)
		}
		bot.rec.waitFor(b, "convergence", convergedAt(fmt.Sprintf("v%d", n)))
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	quantile := func(q float64) float64 {
		return float64(took[int(q*float64(len(took)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(quantile(0.5), "p50-ms")
	b.ReportMetric(quantile(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
