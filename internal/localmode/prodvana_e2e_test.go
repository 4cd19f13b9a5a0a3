package localmode_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/store"
)

// imageRepo is a repository in Prodvana's spelling whose runtime takes a
// dockerImage parameter: the service passes its own image's tag, with
// another tag in production.
const imageRepo = `runtime:
  name: containers
  extension:
    proxyRuntime: {runtime: local}
    apply:
      taskConfig:
        program:
          entrypoint: [sh]
          cmd: [scripts/deploy.sh, "{{.Params.image}}", "{{.Params.image.Tag}}"]
      timeout: 60s
    parameters:
    - name: image
      required: true
      dockerImage:
        imageRegistryInfo:
          containerRegistry: ghcr
          imageRepository: acme/web
---
application:
  name: shop
  releaseChannels:
  - name: staging
    runtimes: [{runtime: containers, type: EXTENSION}]
  - name: production
    runtimes: [{runtime: containers, type: EXTENSION}]
    preconditions:
    - releaseChannelStable: {releaseChannel: staging}
    - manualApproval: {minApprovers: 0}
---
service:
  name: web
  application: shop
  parameters:
  - name: image
    dockerImage:
      defaultTag: "2024.05.1"
      imageRegistryInfo: {containerRegistry: ghcr, imageRepository: acme/web}
  runtimeExtension:
    parameterValues:
    - name: image
      dockerImageTag: "{{.Params.image.Tag}}"
  perReleaseChannel:
  - releaseChannel: production
    runtimeExtension:
      parameterValues:
      - name: image
        dockerImageTag: "2024.04.3"
`

const deployScript = `set -eu
d="$E2E_STATE/$PVN_RELEASE_CHANNEL"
mkdir -p "$d"
printf 'image=%s tag=%s env=%s\n' "$1" "$2" "$PVN_PARAM_image" > "$d/$PVN_SERVICE"
`

// TestRunDeploysADockerImageParameter: bot run renders a dockerImage
// parameter as the full reference in the linked registry, and .Tag as its
// tag, in the job's command and its PVN_PARAM_ variable.
func TestRunDeploysADockerImageParameter(t *testing.T) {
	f := &fixture{t: t, repo: gitrepotest.New(t), state: filepath.Join(t.TempDir(), "state.db"), deployed: t.TempDir()}
	f.repo.Write("shop.pvn.yaml", imageRepo)
	f.repo.Write("scripts/deploy.sh", deployScript)
	f.repo.Commit("web in Prodvana's spelling")
	botYAML := filepath.Join(t.TempDir(), "bot.yaml")
	require.NoError(t, os.WriteFile(botYAML, []byte("containerRegistries:\n- name: ghcr\n  url: https://ghcr.io/\n"), 0o600))

	run := func() string {
		out, errOut, code := f.bot("run", "--repo", f.repo.Dir, "--state", f.state, "--once", "--pass-env", "E2E_STATE", "--bot-config", botYAML)
		require.Equal(t, 0, code, out+errOut)
		return out + errOut
	}
	run()
	assert.Equal(t, map[string]store.Status{"web/staging": store.StatusConverged, "web/production": store.StatusWaitingManualApproval}, f.statuses())
	data, err := os.ReadFile(filepath.Join(f.deployed, "staging", "web"))
	require.NoError(t, err)
	assert.Equal(t, "image=ghcr.io/acme/web:2024.05.1 tag=2024.05.1 env=ghcr.io/acme/web:2024.05.1\n", string(data))

	_, stderr, code := f.bot("approve", "--state", f.state, "--as", "alice", "shop", "production")
	require.Equal(t, 0, code, stderr)
	run()
	data, err = os.ReadFile(filepath.Join(f.deployed, "production", "web"))
	require.NoError(t, err)
	assert.Equal(t, "image=ghcr.io/acme/web:2024.04.3 tag=2024.04.3 env=ghcr.io/acme/web:2024.04.3\n", string(data), "perReleaseChannel's dockerImageTag")
}
