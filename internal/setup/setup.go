// Package setup registers pvnbot's GitHub App through GitHub's App manifest
// flow: a local page posts the manifest (app.yml) to GitHub, GitHub asks its
// user to confirm and sends the browser back with a code, and the code is
// exchanged for the App's ID, webhook secret and private key, which go into
// bot.yaml.
//
// The secret and the key are written to bot.yaml only: never to the page,
// the output or a log.
package setup

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v89/github"
)

// DefaultGitHubURL is the web URL of github.com.
const DefaultGitHubURL = "https://github.com"

// CallbackPath is where GitHub sends the browser back, with ?code=&state=.
const CallbackPath = "/callback"

// exchangeTimeout bounds the call that turns the code into credentials.
const exchangeTimeout = 30 * time.Second

// Config is one registration.
type Config struct {
	// Manifest is app.yml, the App manifest.
	Manifest []byte
	// GitHubURL is GitHub's web URL: https://github.com (empty means it), or
	// a GitHub Enterprise Server's, whose API is at <url>/api/v3/.
	GitHubURL string
	// WebhookURL is where GitHub will send the App's webhooks.
	WebhookURL string
	// Org registers the App under this organization; empty: under the
	// account of whoever is signed in.
	Org string
	// Name replaces the manifest's App name (App names are unique on GitHub).
	Name string
	// Path is the bot.yaml to write.
	Path string
	// Force overwrites an existing Path.
	Force bool
	// HTTPClient calls GitHub's API; nil means one with a timeout.
	HTTPClient *http.Client
}

// App is the registered App.
type App struct {
	ID      int64
	Slug    string
	Name    string
	HTMLURL string
}

// InstallURL is the page where the App is installed on repositories.
func (a *App) InstallURL() string { return strings.TrimRight(a.HTMLURL, "/") + "/installations/new" }

// githubURLs are GitHub's web and REST API base URLs.
type githubURLs struct{ web, api string }

// resolveURLs returns the URLs of github.com, or of the GitHub Enterprise
// Server at raw.
func resolveURLs(raw string) (githubURLs, error) {
	if raw == "" {
		raw = DefaultGitHubURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return githubURLs{}, fmt.Errorf("GitHub URL %q: want the web URL, such as https://github.com or https://ghe.example.com", raw)
	}
	if h := strings.ToLower(u.Hostname()); h == "github.com" || h == "www.github.com" {
		return githubURLs{web: "https://github.com", api: "https://api.github.com/"}, nil
	}
	web := strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/")
	return githubURLs{web: web, api: web + "/api/v3/"}, nil
}

var orgName = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$`)

// flow is one run of the manifest flow: the page, the callback and what
// came of them.
type flow struct {
	cfg       Config
	urls      githubURLs
	manifest  *manifest
	state     string // the CSRF token GitHub hands back
	pageURL   string
	newAppURL string // the form's action
	path      string // cfg.Path made absolute, for the messages
	gh        *github.Client
	out       io.Writer

	mu      sync.Mutex // one exchange at a time
	app     *App
	err     error
	done    chan struct{}
	stopped bool
}

// Run serves the setup page on l until an App is registered and bot.yaml
// written, or ctx ends. It says on out which page to open and, at the end,
// where to install the App. The returned error is set when ctx ended first,
// or when the App was created but bot.yaml could not be written.
func Run(ctx context.Context, l net.Listener, cfg Config, out io.Writer) (*App, error) {
	f, err := newFlow(cfg, l.Addr(), out)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: f.handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	fmt.Fprintf(out, "Open %s in a browser to register the GitHub App %q on %s", f.pageURL, f.manifest.Name, f.urls.web)
	if cfg.Org != "" {
		fmt.Fprintf(out, " for the organization %s", cfg.Org)
	}
	fmt.Fprintf(out, ".\nWaiting for GitHub to send the browser back (Ctrl-C to stop).\n")

	select {
	case <-f.done:
	case <-ctx.Done():
	case err := <-served:
		return nil, fmt.Errorf("serve the setup page: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx) // lets the last page finish

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.app == nil && f.err == nil {
		return nil, fmt.Errorf("stopped before an App was registered: %w", context.Cause(ctx))
	}
	if f.err != nil {
		return f.app, f.err
	}
	a := f.app
	fmt.Fprintf(out, "Registered the GitHub App %s (ID %d): %s\n", a.Name, a.ID, a.HTMLURL)
	fmt.Fprintf(out, "Wrote %s (mode 0600): it holds the App's private key and webhook secret.\n", f.path)
	fmt.Fprintf(out, "Install the App on your repositories: %s\n", a.InstallURL())
	return a, nil
}

func newFlow(cfg Config, addr net.Addr, out io.Writer) (*flow, error) {
	urls, err := resolveURLs(cfg.GitHubURL)
	if err != nil {
		return nil, err
	}
	if u, err := url.Parse(cfg.WebhookURL); cfg.WebhookURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("webhook URL %q: want an absolute URL such as https://pvnbot.example.com/api/github/hook", cfg.WebhookURL)
	}
	if cfg.Org != "" && !orgName.MatchString(cfg.Org) {
		return nil, fmt.Errorf("organization %q: not a GitHub organization name", cfg.Org)
	}
	if cfg.Path == "" {
		return nil, errors.New("no path to write bot.yaml to")
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("bot.yaml path: %w", err)
	}
	if err := checkTarget(path, cfg.Force); err != nil {
		return nil, err
	}
	base, err := pageBase(addr)
	if err != nil {
		return nil, err
	}
	m, err := buildManifest(cfg.Manifest, cfg.Name, cfg.WebhookURL, base+CallbackPath)
	if err != nil {
		return nil, err
	}
	state, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: exchangeTimeout}
	}
	gh, err := github.NewClient(github.WithHTTPClient(hc), github.WithURLs(&urls.api, &urls.api), github.WithUserAgent("pvnbot-setup"))
	if err != nil {
		return nil, fmt.Errorf("GitHub client: %w", err)
	}
	newApp := urls.web + "/settings/apps/new"
	if cfg.Org != "" {
		newApp = urls.web + "/organizations/" + url.PathEscape(cfg.Org) + "/settings/apps/new"
	}
	return &flow{
		cfg: cfg, urls: urls, manifest: m, state: state, path: path, gh: gh, out: out,
		pageURL:   base + "/",
		newAppURL: newApp + "?state=" + url.QueryEscape(state),
		done:      make(chan struct{}),
	}, nil
}

// pageBase is the page's origin as the browser reaches it: the listener's
// address, with 127.0.0.1 for an unspecified one.
func pageBase(addr net.Addr) (string, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "", fmt.Errorf("listen address %s: want a TCP address", addr)
	}
	host := tcp.IP.String()
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port)), nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random state: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func (f *flow) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", f.page)
	mux.HandleFunc("GET "+CallbackPath, f.callback)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A page reached through another host name may be a DNS rebinding
		// attack reading the state: only loopback-style hosts are served.
		if !localHost(r.Host) {
			http.Error(w, "bot setup answers only on an IP address or localhost", http.StatusMisdirectedRequest)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self' "+origin(f.urls.web))
		mux.ServeHTTP(w, r)
	})
}

// localHost tells whether a Host header names an IP address or localhost.
func localHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	return strings.EqualFold(host, "localhost") || net.ParseIP(host) != nil
}

func origin(web string) string {
	u, err := url.Parse(web)
	if err != nil {
		return web
	}
	return u.Scheme + "://" + u.Host
}

func (f *flow) page(w http.ResponseWriter, r *http.Request) {
	owner := "your personal account"
	if f.cfg.Org != "" {
		owner = "the organization " + f.cfg.Org
	}
	render(w, http.StatusOK, startPage, map[string]any{
		"Manifest": f.manifest,
		"Action":   f.newAppURL,
		"GitHub":   f.urls.web,
		"Host":     hostOf(f.urls.web),
		"Owner":    owner,
		"Path":     f.path,
		"Force":    f.cfg.Force,
	})
}

func hostOf(web string) string {
	if u, err := url.Parse(web); err == nil {
		return u.Host
	}
	return web
}

func (f *flow) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state, code := q.Get("state"), q.Get("code")
	if subtle.ConstantTimeCompare([]byte(state), []byte(f.state)) != 1 {
		fmt.Fprintln(f.out, "Refused a callback whose state is not this page's: it was not started from this page.")
		f.problem(w, http.StatusForbidden, "This link was not started from this setup page",
			"Its state does not match, so its code was not used. Start again from the setup page.")
		return
	}
	if code == "" {
		f.problem(w, http.StatusBadRequest, "GitHub sent no code", "Start again from the setup page.")
		return
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		f.problem(w, http.StatusGone, "This setup is over", "bot setup has already registered an App or given up; run it again to register another.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), exchangeTimeout)
	defer cancel()
	app, secret, key, err := f.exchange(ctx, code)
	if err != nil {
		fmt.Fprintf(f.out, "GitHub did not turn the code into the App's credentials: %v\n", err)
		f.problem(w, http.StatusBadGateway, "GitHub did not give the App's credentials",
			err.Error()+". Start again from the setup page.")
		return
	}
	f.stopped, f.app = true, app
	defer close(f.done)
	data, err := botYAML(f.urls, app, secret, key)
	if err == nil {
		err = writePrivate(f.path, data, f.cfg.Force)
	}
	if err != nil {
		f.err = fmt.Errorf("the App %s was created (%s) but bot.yaml was not written: %w; "+
			"generate a new private key and webhook secret in the App's settings", app.Slug, app.HTMLURL, err)
		f.problem(w, http.StatusInternalServerError, "The App was created, but bot.yaml was not written",
			f.err.Error()+".")
		return
	}
	render(w, http.StatusOK, donePage, map[string]any{"App": app, "Install": app.InstallURL(), "Path": f.path})
}

// exchange turns the code into the App and its webhook secret and private key.
func (f *flow) exchange(ctx context.Context, code string) (*App, string, string, error) {
	c, _, err := f.gh.Apps.CompleteAppManifest(ctx, code)
	if err != nil {
		return nil, "", "", fmt.Errorf("POST %sapp-manifests/…/conversions: %w", f.urls.api, stripURL(err))
	}
	app := &App{ID: c.GetID(), Slug: c.GetSlug(), Name: c.GetName(), HTMLURL: c.GetHTMLURL()}
	var missing []string
	for _, f := range []struct {
		name  string
		empty bool
	}{
		{"id", app.ID == 0}, {"html_url", app.HTMLURL == ""},
		{"webhook_secret", c.GetWebhookSecret() == ""}, {"pem", c.GetPEM() == ""},
	} {
		if f.empty {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, "", "", fmt.Errorf("GitHub's answer lacks %s", strings.Join(missing, ", "))
	}
	if app.Name == "" {
		app.Name = app.Slug
	}
	return app, c.GetWebhookSecret(), c.GetPEM(), nil
}

// stripURL keeps go-github's error without the request URL, which holds
// the code.
func stripURL(err error) error {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		msg := er.Response.Status
		if er.Message != "" {
			msg += ": " + er.Message
		}
		return errors.New(msg)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (f *flow) problem(w http.ResponseWriter, status int, title, detail string) {
	render(w, status, problemPage, map[string]any{"Title": title, "Detail": detail, "Page": f.pageURL})
}
