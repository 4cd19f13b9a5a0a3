package kubee2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner/kube"
	"github.com/pvnbot/pvnbot/internal/store"
)

// A getInfo Job run through pvn-wrapper prints its JSON on stdout and noise
// on stderr; the wrapper's line is parsed back and the JSON becomes the
// target's Info, the stderr staying out of it.
func TestGetInfoThroughWrapper(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	work := t.TempDir()
	deployed := filepath.Join(work, "deployed")
	apply := script(t, work, "apply.sh", fmt.Sprintf(`printf '%%s' "$PVN_DESIRED_VERSION" > %q`+"\n", deployed))
	info := script(t, work, "info.sh", fmt.Sprintf(`echo "getInfo diagnostics on stderr" >&2
printf '{"outputs":[{"name":"deployed","text":"%%s at %%s"},{"name":"service","text":"%%s"}]}\n' "$(cat %q)" "$PVN_RELEASE_CHANNEL" "$PVN_SERVICE"
`, deployed))

	rt := runtimeName("info")
	r := newRepo(t)
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
    getInfo:
      taskConfig:
        program:
          image: example.org/tools:1
          entrypoint: [pvn-wrapper, exec, --]
          cmd: [sh, %q]
    applyId: "v-{{.Params.version}}"
    parameters:
    - name: version
      string: {defaultValue: "1.2.3"}
`, rt, cluster, apply, info))
	r.demo(rt, "shop")
	commit := commitOf(2)

	b := startBot(t, store.NewMemory().Repo(repoName), commit, r.targets(commit))
	key := desired.Key{Application: "demo", Service: "shop", ReleaseChannel: "staging"}
	states := b.rec.waitFor(t, "getInfo's outputs", func(s map[desired.Key]store.TargetState) bool {
		return s[key].Status == store.StatusConverged && len(s[key].Info) > 0
	})

	got := states[key]
	assert.Equal(t, []store.InfoOutput{
		{Name: "deployed", Text: "v-1.2.3 at staging"},
		{Name: "service", Text: "shop"},
	}, got.Info)
	assert.Equal(t, 0, got.LastGetInfo.ExitCode)
	assert.Empty(t, got.LastGetInfo.Error)

	infoJobs := jobsOf(t, ctx, rt, kube.LabelAction+"=getInfo")
	require.NotEmpty(t, infoJobs)
	c := infoJobs[0].Spec.Template.Spec.Containers[0]
	assert.Equal(t, []string{"pvn-wrapper", "exec", "--"}, c.Command, "the Job ran through pvn-wrapper")
}
