// Package links is what a bot is linked to besides local processes, from
// bot.yaml or bot run's flags: Kubernetes clusters for runtimes whose
// proxyRuntime names one, container registries for imageRegistryInfo, and
// where secret parameter values come from. bot run and bot serve wire their
// runners and ingest options from it alike.
package links

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/ingest"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/runner/kube"
	"github.com/pvnbot/pvnbot/internal/runner/local"
	"github.com/pvnbot/pvnbot/internal/runner/mux"
)

// Links is what a bot is linked to besides local processes: Kubernetes
// clusters, for runtimes whose proxyRuntime names one; container registries,
// for imageRegistryInfo; and where secret parameter values come from.
type Links struct {
	Clusters   []kube.Cluster
	Registries map[string]string // name → URL
	// Secrets looks up the values of secret parameters; nil: EnvSecrets.
	Secrets desired.SecretSource
}

// KubeconfigClusters links the contexts of a kubeconfig file: each under
// its own name, or only kubeContext when it is set. name, when set, is the
// name runtimes use for the one context linked (kubeContext, else the
// current one).
func KubeconfigClusters(path, kubeContext, name string) ([]kube.Cluster, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read kubeconfig %s: %w", path, err)
	}
	if name != "" {
		if kubeContext == "" {
			kubeContext = cfg.CurrentContext
		}
		if _, ok := cfg.Contexts[kubeContext]; !ok {
			return nil, fmt.Errorf("kubeconfig %s has no context %q", path, kubeContext)
		}
		return []kube.Cluster{{Name: name, Kubeconfig: path, Context: kubeContext}}, nil
	}
	var out []kube.Cluster
	for ctxName := range cfg.Contexts {
		if kubeContext == "" || ctxName == kubeContext {
			out = append(out, kube.Cluster{Name: ctxName, Kubeconfig: path, Context: ctxName})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("kubeconfig %s has no context %q", path, kubeContext)
	}
	slices.SortFunc(out, func(a, b kube.Cluster) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// FromBot takes the links of a bot.yaml: its kubernetesRuntimes and
// containerRegistries.
func FromBot(bot *config.Bot) Links {
	var l Links
	for _, k := range bot.KubernetesRuntimes {
		l.Clusters = append(l.Clusters, kube.Cluster{Name: k.Name, Kubeconfig: k.Kubeconfig, Context: k.Context, InCluster: k.InCluster})
	}
	if len(bot.ContainerRegistries) > 0 {
		l.Registries = map[string]string{}
		for _, r := range bot.ContainerRegistries {
			l.Registries[r.Name] = r.URL
		}
	}
	return l
}

// ClusterNames lists the linked clusters' names.
func (l Links) ClusterNames() []string {
	names := make([]string, len(l.Clusters))
	for i, c := range l.Clusters {
		names[i] = c.Name
	}
	return names
}

// Linked is what validation checks proxy runtimes and registries against.
func (l Links) Linked() *config.Linked {
	linked := &config.Linked{KubernetesRuntimes: l.ClusterNames()}
	for name := range l.Registries {
		linked.ContainerRegistries = append(linked.ContainerRegistries, name)
	}
	slices.Sort(linked.ContainerRegistries)
	return linked
}

// IngestOptions are the ingest options of a repository served with these
// links; secret values come from the bot's environment unless Secrets says.
func (l Links) IngestOptions() ingest.Options {
	secrets := l.Secrets
	if secrets == nil {
		secrets = EnvSecrets(os.LookupEnv)
	}
	return ingest.Options{Linked: l.Linked(), Desired: desired.Options{Registries: l.Registries, Secrets: secrets}}
}

// PlanOptions are IngestOptions with PlaceholderSecrets: what renders a
// commit that will not run here (a pull request's plan, bot validate)
// never reads a secret, so that a config nobody merged cannot learn which
// secrets exist or feed their values to its templates.
func (l Links) PlanOptions() ingest.Options {
	opts := l.IngestOptions()
	opts.Desired.Secrets = PlaceholderSecrets
	return opts
}

// PlaceholderSecrets gives every secret parameter a placeholder value.
var PlaceholderSecrets = desired.SecretFunc(func(key, _ string) (string, error) {
	return "pvn-placeholder-for-" + key, nil
})

// KubeRunner is the Kubernetes runner of the linked clusters, nil when
// none is linked. One is shared by every repository a bot serves.
func (l Links) KubeRunner(logger *slog.Logger) (*kube.Runner, error) {
	if len(l.Clusters) == 0 {
		return nil, nil
	}
	clients, err := kube.NewClients(l.Clusters)
	if err != nil {
		return nil, err
	}
	return kube.New(clients, kube.WithLogger(logger)), nil
}

// Runner runs the jobs of runtimes whose proxy runtime is local with loc,
// and the others as Kubernetes Jobs with kr (from KubeRunner).
func (l Links) Runner(loc *local.Runner, kr *kube.Runner) reconcile.Runner {
	if kr == nil {
		return loc
	}
	return mux.New(loc, kr, l.ClusterNames())
}

// EnvSecrets gives secret parameter values from the bot's environment: the
// value of `secret: {key: db-password}` is $PVN_SECRET_DB_PASSWORD, and with
// `version: 3`, $PVN_SECRET_DB_PASSWORD_3 when it is set. A value of fewer
// than runner.MinSecretLength characters is refused, naming the variable.
func EnvSecrets(lookup func(string) (string, bool)) desired.SecretFunc {
	return func(key, version string) (string, error) {
		name := SecretEnvName(key)
		if version != "" {
			if v, ok := lookup(name + "_" + envSafe(version)); ok {
				return checkSecret(key, name+"_"+envSafe(version), v)
			}
		}
		if v, ok := lookup(name); ok {
			return checkSecret(key, name, v)
		}
		return "", fmt.Errorf("secret %q: set $%s in the bot's environment", key, name)
	}
}

func checkSecret(key, variable, v string) (string, error) {
	if n := utf8.RuneCountInString(v); n < runner.MinSecretLength {
		chars := "characters"
		if n == 1 {
			chars = "character"
		}
		return "", fmt.Errorf("secret %q: $%s holds %d %s: a secret needs at least %d, since a shorter one cannot be redacted from job output without destroying it",
			key, variable, n, chars, runner.MinSecretLength)
	}
	return v, nil
}

// SecretEnvName is the variable EnvSecrets reads for a secret's key.
func SecretEnvName(key string) string { return "PVN_SECRET_" + envSafe(key) }

func envSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, s)
}
