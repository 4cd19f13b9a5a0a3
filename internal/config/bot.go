package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"go.yaml.in/yaml/v3"
)

// DefaultServerPort is the port `bot serve` listens on when bot.yaml does
// not say.
const DefaultServerPort = 8080

// Bot is the bot's own configuration, bot.yaml (SPEC §6).
type Bot struct {
	// GitHub holds the App's credentials. Its webhook secret and private key
	// are never printed.
	GitHub GitHub
	Server struct {
		Address string
		Port    int
	}
	Store struct {
		Path string
	}
	KubernetesRuntimes  []KubernetesRuntime
	ContainerRegistries []ContainerRegistry
	// Branches whose pushes are ingested; empty means the repository's
	// default branch.
	Branches    []string
	LocalRunner struct {
		// PassEnv lists the bot's environment variables that local jobs get.
		PassEnv []string
	}
}

// GitHub is bot.yaml's github section: the layout of go-githubapp's Config
// (web_url, v3_api_url, app: {integration_id, webhook_secret, private_key}),
// kept free of that package so that config does not depend on go-github.
// The server turns it into a githubapp.Config and applies the environment
// overrides there (GITHUB_APP_PRIVATE_KEY, GITHUB_APP_WEBHOOK_SECRET, ...).
type GitHub struct {
	WebURL   string
	V3APIURL string
	V4APIURL string
	App      struct {
		IntegrationID int64
		WebhookSecret string
		PrivateKey    string
	}
	OAuth struct {
		ClientID     string
		ClientSecret string
	}
}

// KubernetesRuntime is a cluster linked to the bot, where proxy runtimes of
// that name run their jobs.
type KubernetesRuntime struct {
	Name       string
	Kubeconfig string // path to a kubeconfig file; empty: the default loading rules
	Context    string // kubeconfig context; empty: the current one
	InCluster  bool   // use the pod's service account
}

// ContainerRegistry is a registry linked to the bot, named by
// imageRegistryInfo.containerRegistry.
type ContainerRegistry struct {
	Name string
	URL  string // such as ghcr.io/my-org
}

// Linked returns the runtimes and registries linked in the configuration.
func (b *Bot) Linked() *Linked {
	l := &Linked{KubernetesRuntimes: []string{}, ContainerRegistries: []string{}}
	for _, r := range b.KubernetesRuntimes {
		l.KubernetesRuntimes = append(l.KubernetesRuntimes, r.Name)
	}
	for _, r := range b.ContainerRegistries {
		l.ContainerRegistries = append(l.ContainerRegistries, r.Name)
	}
	return l
}

// Registry returns the linked container registry called name, or nil.
func (b *Bot) Registry(name string) *ContainerRegistry {
	for i := range b.ContainerRegistries {
		if b.ContainerRegistries[i].Name == name {
			return &b.ContainerRegistries[i]
		}
	}
	return nil
}

// LoadBot reads bot.yaml strictly (unknown keys and wrong types are errors
// with their line and column; snake_case and camelCase keys are both
// accepted). Environment overrides of the GitHub credentials are the
// server's to apply.
func LoadBot(path string) (*Bot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load bot config: %w", err)
	}
	return ParseBot(path, data)
}

// ParseBot decodes bot.yaml content; file is the name used in errors.
func ParseBot(file string, data []byte) (*Bot, error) {
	var errs Errors
	b := &Bot{}
	b.Server.Port = DefaultServerPort
	var doc yaml.Node
	err := decodeDoc(yaml.NewDecoder(bytes.NewReader(data)), &doc)
	if err != nil && !errors.Is(err, io.EOF) {
		errs = append(errs, syntaxError(file, data, err))
		return nil, errs
	}
	reported := 0
	d := &decoder{file: file, errs: &errs, budget: maxNodes, reported: &reported}
	var root *yaml.Node
	if len(doc.Content) > 0 {
		root = d.resolve(doc.Content[0])
	}
	m := d.mapping(root, "bot", Pos{File: file, Line: 1, Col: 1},
		"github", "server", "store", "kubernetesRuntimes", "containerRegistries", "branches", "localRunner")
	d.botGitHub(m.sub("github", "webUrl", "v3ApiUrl", "v4ApiUrl", "app", "oauth"), &b.GitHub)

	srv := m.sub("server", "address", "port")
	b.Server.Address = srv.str("address")
	if p, ok := srv.int("port"); ok {
		if p < 0 || p > 65535 {
			d.errorf(srv.keyPos("port"), "%s: %d is not a port number", srv.field("port"), p)
		} else {
			b.Server.Port = p
		}
	}
	b.Store.Path = m.sub("store", "path").str("path")
	for i, n := range m.seq("kubernetesRuntimes") {
		k := m.item("kubernetesRuntimes", i, n, "name", "kubeconfig", "context", "inCluster")
		if k == nil {
			continue
		}
		r := KubernetesRuntime{Kubeconfig: k.str("kubeconfig"), Context: k.str("context"), InCluster: k.bool("inCluster")}
		var p Pos
		r.Name, p = k.name(false)
		if r.Name == LocalRuntime {
			d.errorf(p, "%s: %q is reserved for the local proxy runtime", k.field("name"), r.Name)
		}
		if slices.ContainsFunc(b.KubernetesRuntimes, func(o KubernetesRuntime) bool { return o.Name == r.Name }) {
			d.errorf(p, "%s: duplicate Kubernetes runtime %q", k.field("name"), r.Name)
		}
		b.KubernetesRuntimes = append(b.KubernetesRuntimes, r)
	}
	for i, n := range m.seq("containerRegistries") {
		k := m.item("containerRegistries", i, n, "name", "url")
		if k == nil {
			continue
		}
		k.require("url")
		r := ContainerRegistry{URL: k.str("url")}
		var p Pos
		r.Name, p = k.name(false)
		if b.Registry(r.Name) != nil {
			d.errorf(p, "%s: duplicate container registry %q", k.field("name"), r.Name)
		}
		b.ContainerRegistries = append(b.ContainerRegistries, r)
	}
	b.Branches = m.strs("branches")
	b.LocalRunner.PassEnv = m.sub("localRunner", "passEnv").strs("passEnv")
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return b, nil
}

// botGitHub decodes the github section. Secret values never appear in
// errors: only their kind does.
func (d *decoder) botGitHub(m *mapping, c *GitHub) {
	c.WebURL = m.str("webUrl")
	c.V3APIURL = m.str("v3ApiUrl")
	c.V4APIURL = m.str("v4ApiUrl")
	app := m.sub("app", "integrationId", "webhookSecret", "privateKey")
	if id, ok := app.int("integrationId"); ok {
		c.App.IntegrationID = int64(id)
	}
	c.App.WebhookSecret = app.str("webhookSecret")
	c.App.PrivateKey = app.str("privateKey")
	oauth := m.sub("oauth", "clientId", "clientSecret")
	c.OAuth.ClientID = oauth.str("clientId")
	c.OAuth.ClientSecret = oauth.str("clientSecret")
}
