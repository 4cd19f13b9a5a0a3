package kubee2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/links"
	"github.com/pvnbot/pvnbot/internal/localmode"
	"github.com/pvnbot/pvnbot/internal/store"
)

// bot run --kubeconfig: a runtime whose proxyRuntime names a context of the
// kubeconfig runs its jobs as Jobs in that cluster; the others stay local.
func TestBotRunWithKubeconfig(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	clusters, err := links.KubeconfigClusters(plane.Kubeconfig, "", "")
	require.NoError(t, err)
	require.Len(t, clusters, 1)
	context := clusters[0].Name

	work := t.TempDir()
	deployed := filepath.Join(work, "deployed")
	rt := runtimeName("botrun")
	repo := gitrepotest.New(t)
	repo.Write("runtime.pvn.yaml", fmt.Sprintf(`runtime:
  name: %[1]s
  custom:
    proxyRuntime:
      runtime: %[2]s
    apply:
      taskConfig:
        program:
          image: example.org/tools:1
          entrypoint: [sh, -c]
          cmd: ['echo "$PVN_PARAM_version" > %[3]s-$PVN_SERVICE']
    fetch:
      taskConfig:
        program:
          image: example.org/tools:1
          entrypoint: [sh, -c]
          cmd: ['test "$(cat %[3]s-$PVN_SERVICE 2>/dev/null)" = "$PVN_PARAM_version" || exit 2']
      pollInterval: 200ms
    parameters:
    - name: version
      string: {defaultValue: "1.0"}
---
runtime:
  name: on-the-bot
  custom:
    proxyRuntime:
      runtime: local
    apply:
      taskConfig:
        program:
          cmd: ['true']
`, rt, context, deployed))
	repo.Write("app.pvn.yaml", fmt.Sprintf(`application:
  name: shop
  releaseChannels:
  - name: staging
    runtimes:
    - runtime: %s
      name: main
    - runtime: on-the-bot
      name: side
`, rt))
	repo.Write("services.pvn.yaml", `service:
  name: web
  application: shop
  runtimeConnection: main
---
service:
  name: notes
  application: shop
  runtimeConnection: side
`)
	repo.Commit("one cluster runtime, one local")

	var out bytes.Buffer
	res, err := localmode.Run(ctx, localmode.Options{
		RepoDir: repo.Dir, Once: true, Out: &out, Poll: 100 * time.Millisecond,
		Links: links.Links{Clusters: clusters}, Logger: testLogger(t),
	})
	require.NoError(t, err, out.String())
	require.False(t, res.Failed, out.String())
	for _, st := range res.States {
		assert.Equal(t, store.StatusConverged, st.Status, "%s: %s", st.Key(), st.Message)
	}

	got, err := os.ReadFile(deployed + "-web")
	require.NoError(t, err)
	assert.Equal(t, "1.0\n", string(got), "the apply Job ran on the cluster's node")
	jobs := jobsOf(t, ctx, rt)
	assert.Len(t, jobs, 3, "fetch (drift), apply, fetch: each a Job")
	for _, j := range jobs {
		assert.Equal(t, "web", j.Labels["pvnbot.dev/service"])
	}
}
