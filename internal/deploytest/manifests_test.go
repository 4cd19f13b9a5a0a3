package deploytest

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pvnbot/pvnbot/internal/config"
)

// The Deployment is what SPEC §6 and the issue ask: one replica, Recreate,
// probes on the server port, non-root, a read-only root, the store on the
// claim, bot.yaml from the ConfigMap (readable by config.ParseBot, its store
// on the claim), the App's secrets from the Secret the template makes.
func TestDeploymentShape(t *testing.T) {
	objs := build(t, deployDir())
	d := one[*appsv1.Deployment](t, objs)
	assert.Equal(t, "pvnbot", d.Namespace)
	require.NotNil(t, d.Spec.Replicas)
	assert.Equal(t, int32(1), *d.Spec.Replicas)
	assert.Equal(t, appsv1.RecreateDeploymentStrategyType, d.Spec.Strategy.Type)

	pod := d.Spec.Template.Spec
	assert.Equal(t, "pvnbot", pod.ServiceAccountName)
	require.NotNil(t, pod.SecurityContext.RunAsNonRoot)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	assert.Equal(t, int64(65532), *pod.SecurityContext.RunAsUser)
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	assert.Equal(t, "pvnbot:dev", c.Image)
	assert.Equal(t, []string{"serve", "--config", "/etc/pvnbot/bot.yaml"}, c.Args)
	require.NotNil(t, c.SecurityContext)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	assert.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
	require.Len(t, c.Ports, 1)
	assert.Equal(t, int32(config.DefaultServerPort), c.Ports[0].ContainerPort)
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		assert.Equal(t, c.Ports[0].Name, p.HTTPGet.Port.String(), "probes hit the server port")
	}

	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	claim := one[*corev1.PersistentVolumeClaim](t, objs)
	require.NotNil(t, volumes["state"].PersistentVolumeClaim)
	assert.Equal(t, claim.Name, volumes["state"].PersistentVolumeClaim.ClaimName)
	assert.Equal(t, "/var/lib/pvnbot", mounts["state"])
	assert.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, claim.Spec.AccessModes)

	cm := one[*corev1.ConfigMap](t, objs)
	require.NotNil(t, volumes["config"].ConfigMap)
	assert.Equal(t, cm.Name, volumes["config"].ConfigMap.Name, "kustomize's hashed name reaches the volume")
	assert.Equal(t, "/etc/pvnbot", mounts["config"])
	bot, err := config.ParseBot("bot.yaml", []byte(cm.Data["bot.yaml"]))
	require.NoError(t, err)
	assert.Equal(t, int(c.Ports[0].ContainerPort), bot.Server.Port)
	assert.True(t, strings.HasPrefix(bot.Store.Path, mounts["state"]+"/"), "the store %s is on the claim", bot.Store.Path)
	require.Len(t, bot.KubernetesRuntimes, 1)
	assert.True(t, bot.KubernetesRuntimes[0].InCluster)
	assert.Empty(t, bot.GitHub.App.PrivateKey, "secrets come from the Secret, not the ConfigMap")
	assert.Empty(t, bot.GitHub.App.WebhookSecret)

	// The Secret template holds exactly the variables the container reads.
	data, err := os.ReadFile(filepath.Join(deployDir(), "secret.template.yaml"))
	require.NoError(t, err)
	secret := one[*corev1.Secret](t, decodeAll(t, data))
	assert.Equal(t, d.Namespace, secret.Namespace)
	env := map[string]string{}
	for _, e := range c.Env {
		require.NotNil(t, e.ValueFrom, e.Name)
		require.NotNil(t, e.ValueFrom.SecretKeyRef, e.Name)
		assert.Equal(t, secret.Name, e.ValueFrom.SecretKeyRef.Name)
		env[e.Name] = e.ValueFrom.SecretKeyRef.Key
	}
	assert.Equal(t, map[string]string{
		"GITHUB_APP_PRIVATE_KEY":    "GITHUB_APP_PRIVATE_KEY",
		"GITHUB_APP_WEBHOOK_SECRET": "GITHUB_APP_WEBHOOK_SECRET",
	}, env, "go-githubapp's SetValuesFromEnv reads these names")
	for key := range secret.StringData {
		assert.Contains(t, env, key)
	}
	assert.Empty(t, only[*corev1.Secret](objs), "the base holds no Secret: applying it never overwrites the App's key")

	svc := one[*corev1.Service](t, objs)
	assert.Equal(t, d.Spec.Template.Labels["app.kubernetes.io/name"], svc.Spec.Selector["app.kubernetes.io/name"])
	require.Len(t, svc.Spec.Ports, 1)
	assert.Equal(t, c.Ports[0].Name, svc.Spec.Ports[0].TargetPort.String())
}

// The Dockerfile's build step, run here as written (with its /out in a
// temporary folder), makes static binaries; the final stage is distroless
// or scratch and runs as 65532. (No Docker engine runs here to build the
// image itself.)
func TestDockerfileBuildsStaticBinaries(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	lines := strings.Split(text, "\n")

	var from, user []string
	var build string
	cgoOff := false
	for _, l := range lines {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "FROM "):
			from = append(from, l)
		case strings.HasPrefix(l, "USER "):
			user = append(user, strings.TrimPrefix(l, "USER "))
		case l == "ENV CGO_ENABLED=0":
			cgoOff = true
		case strings.HasPrefix(l, "RUN go build"):
			build = strings.TrimPrefix(l, "RUN ")
		}
	}
	require.GreaterOrEqual(t, len(from), 2, "multi-stage")
	assert.Regexp(t, `^FROM (gcr\.io/distroless/static\S*|scratch)$`, from[len(from)-1])
	require.NotEmpty(t, user)
	assert.Regexp(t, `^65532(:65532)?$`, user[len(user)-1])
	assert.True(t, cgoOff, "ENV CGO_ENABLED=0 before the build")
	require.NotEmpty(t, build)

	out := t.TempDir()
	cmd := exec.Command("sh", "-c", strings.ReplaceAll(build, "/out/", out+"/"))
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))

	for _, name := range []string{"bot", "pvn-wrapper"} {
		t.Run(name, func(t *testing.T) {
			f, err := elf.Open(filepath.Join(out, name))
			require.NoError(t, err)
			defer f.Close()
			for _, p := range f.Progs {
				assert.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary has no dynamic loader")
			}
			libs, _ := f.ImportedLibraries()
			assert.Empty(t, libs)
		})
	}
	assert.Regexp(t, regexp.MustCompile(`COPY --from=\S+ .*/out/bot .*/out/pvn-wrapper`), text)
}
