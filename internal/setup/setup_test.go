package setup

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot"
	"github.com/pvnbot/pvnbot/internal/config"
)

// syncBuffer is an io.Writer safe for the setup goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a setup.Run in progress on a loopback port.
type running struct {
	base     string // http://127.0.0.1:PORT
	out      *syncBuffer
	finished chan struct{}
	app      *App
	err      error
}

func startSetup(t *testing.T, cfg Config) *running {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{base: "http://" + l.Addr().String(), out: &syncBuffer{}, finished: make(chan struct{})}
	go func() {
		defer close(r.finished)
		defer l.Close()
		r.app, r.err = Run(ctx, l, cfg, r.out)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.finished
	})
	return r
}

// wait waits for Run to return.
func (r *running) wait(t *testing.T) (*App, error) {
	t.Helper()
	select {
	case <-r.finished:
		return r.app, r.err
	case <-time.After(30 * time.Second):
		t.Fatalf("bot setup did not finish; output:\n%s", r.out.String())
		return nil, nil
	}
}

func (r *running) isFinished() bool {
	select {
	case <-r.finished:
		return true
	default:
		return false
	}
}

var (
	formAction    = regexp.MustCompile(`<form action="([^"]+)" method="post">`)
	manifestField = regexp.MustCompile(`name="manifest" value="([^"]*)"`)
)

// pressCreate does what a browser does with the page's button: it reads the
// page, posts its form to GitHub and follows GitHub's redirect back. It
// returns the last answer and its body.
func pressCreate(t *testing.T, pageURL string) (*http.Response, string) {
	t.Helper()
	status, page := get(t, pageURL)
	require.Equal(t, http.StatusOK, status, page)
	action := formAction.FindStringSubmatch(page)
	require.NotNil(t, action, page)
	field := manifestField.FindStringSubmatch(page)
	require.NotNil(t, field, page)
	resp, err := http.PostForm(html.UnescapeString(action[1]), url.Values{"manifest": {html.UnescapeString(field[1])}})
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func testConfig(gh *fakeGitHub, dir string) Config {
	return Config{
		Manifest:   pvnbot.AppManifest,
		GitHubURL:  gh.URL(),
		WebhookURL: "https://pvnbot.example.org/api/github/hook",
		Path:       filepath.Join(dir, "bot.yaml"),
	}
}

// checkBotYAML reads bot.yaml as the bot does and checks the App's credentials.
func checkBotYAML(t *testing.T, path string, gh *fakeGitHub, appID int64) {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	bot, err := config.ParseBot(path, data)
	require.NoError(t, err, string(data))
	assert.Equal(t, gh.URL(), bot.GitHub.WebURL)
	assert.Equal(t, gh.URL()+"/api/v3/", bot.GitHub.V3APIURL)
	assert.Equal(t, appID, bot.GitHub.App.IntegrationID)
	assert.Equal(t, gh.lastSecret(), bot.GitHub.App.WebhookSecret)
	assert.Equal(t, gh.pem, bot.GitHub.App.PrivateKey)
	block, _ := pem.Decode([]byte(bot.GitHub.App.PrivateKey))
	require.NotNil(t, block)
	_, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	assert.NoError(t, err)
	assert.Contains(t, string(data), "privateKey: |", "the key is a readable block")
}

// The whole flow: the page posts app.yml's manifest with this setup's
// webhook and redirect URLs, GitHub's code is exchanged, bot.yaml is written
// for config.ParseBot, and the install link is shown; the secret and the key
// appear nowhere but in bot.yaml.
func TestRegisterWritesBotYAML(t *testing.T) {
	gh := newFakeGitHub(t)
	cfg := testConfig(gh, t.TempDir())
	r := startSetup(t, cfg)

	resp, page := pressCreate(t, r.base+"/")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.Equal(t, CallbackPath, resp.Request.URL.Path, "GitHub sent the browser back to the setup page")
	install := gh.URL() + "/apps/pvnbot/installations/new"
	assert.Contains(t, page, `href="`+install+`"`)

	app, err := r.wait(t)
	require.NoError(t, err, r.out.String())
	assert.Equal(t, &App{ID: 4242, Slug: "pvnbot", Name: "pvnbot", HTMLURL: gh.URL() + "/apps/pvnbot"}, app)
	checkBotYAML(t, cfg.Path, gh, 4242)

	manifests, paths := gh.posted()
	require.Len(t, manifests, 1)
	assert.Equal(t, []string{"/settings/apps/new"}, paths)
	m := manifests[0]
	assert.Equal(t, "pvnbot", m["name"])
	assert.Equal(t, cfg.WebhookURL, m["hook_attributes"].(map[string]any)["url"])
	assert.Equal(t, r.base+CallbackPath, m["redirect_url"])
	assert.Equal(t, []any{"push", "pull_request", "issue_comment", "check_run"}, m["default_events"])
	assert.Equal(t, map[string]any{"checks": "write", "contents": "read", "metadata": "read", "pull_requests": "write", "issues": "write"},
		m["default_permissions"])
	assert.Equal(t, false, m["public"])

	out := r.out.String()
	assert.Contains(t, out, "Open "+r.base+"/ in a browser")
	assert.Contains(t, out, "Install the App on your repositories: "+install+"\n")
	for _, secret := range []string{gh.lastSecret(), gh.pem, "PRIVATE KEY"} {
		assert.NotContains(t, out, secret)
		assert.NotContains(t, page, secret)
	}
}

// --org registers under the organization, --name renames the App, and
// --force replaces an existing file, leaving it 0600 whatever it was.
func TestOrgNameAndForce(t *testing.T) {
	gh := newFakeGitHub(t)
	cfg := testConfig(gh, t.TempDir())
	cfg.Org, cfg.Name, cfg.Force = "acme-corp", "acme pvnbot", true
	require.NoError(t, os.WriteFile(cfg.Path, []byte("old: content\n"), 0o644))
	r := startSetup(t, cfg)

	resp, page := pressCreate(t, r.base+"/")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	_, err := r.wait(t)
	require.NoError(t, err, r.out.String())
	checkBotYAML(t, cfg.Path, gh, 4242)
	manifests, paths := gh.posted()
	assert.Equal(t, []string{"/organizations/acme-corp/settings/apps/new"}, paths)
	assert.Equal(t, "acme pvnbot", manifests[0]["name"])
	assert.Contains(t, r.out.String(), gh.URL()+"/apps/acme-pvnbot/installations/new")
	entries, err := os.ReadDir(filepath.Dir(cfg.Path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}

// An existing bot.yaml is refused before anything is served, and left alone.
func TestExistingConfigRefused(t *testing.T) {
	gh := newFakeGitHub(t)
	cfg := testConfig(gh, t.TempDir())
	require.NoError(t, os.WriteFile(cfg.Path, []byte("keep: me\n"), 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	var out bytes.Buffer
	_, err = Run(context.Background(), l, cfg, &out)
	require.ErrorContains(t, err, cfg.Path+" exists: pass --force to overwrite it")
	assert.Empty(t, out.String())
	data, err := os.ReadFile(cfg.Path)
	require.NoError(t, err)
	assert.Equal(t, "keep: me\n", string(data))
}

// The file is also refused if it appears while the page waits (another
// setup): the App exists then, and the error says how to recover.
func TestConfigAppearingMeanwhileIsNotOverwritten(t *testing.T) {
	gh := newFakeGitHub(t)
	cfg := testConfig(gh, t.TempDir())
	r := startSetup(t, cfg)
	status, _ := get(t, r.base+"/")
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, os.WriteFile(cfg.Path, []byte("keep: me\n"), 0o644))

	resp, page := pressCreate(t, r.base+"/")
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Contains(t, page, "The App was created, but bot.yaml was not written")
	_, err := r.wait(t)
	require.ErrorContains(t, err, "exists: pass --force")
	assert.ErrorContains(t, err, "generate a new private key")
	data, err := os.ReadFile(cfg.Path)
	require.NoError(t, err)
	assert.Equal(t, "keep: me\n", string(data))
}

// A callback with another state (a link crafted elsewhere: CSRF) is refused
// without using its code; the real one still works afterwards.
func TestCallbackStateChecked(t *testing.T) {
	gh := newFakeGitHub(t)
	cfg := testConfig(gh, t.TempDir())
	r := startSetup(t, cfg)

	for _, q := range []string{"code=abc&state=forged", "code=abc", "code=abc&state="} {
		status, page := get(t, r.base+CallbackPath+"?"+q)
		assert.Equal(t, http.StatusForbidden, status, q)
		assert.Contains(t, page, "This link was not started from this setup page")
	}
	assert.Equal(t, 0, gh.conversionCalls(), "no code was exchanged")
	assert.False(t, r.isFinished())
	_, err := os.Stat(cfg.Path)
	assert.ErrorIs(t, err, os.ErrNotExist)

	resp, page := pressCreate(t, r.base+"/")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	_, err = r.wait(t)
	require.NoError(t, err)
	checkBotYAML(t, cfg.Path, gh, 4242)
}

// A code GitHub does not convert (expired, used) shows the error and keeps
// the page up for another try.
func TestConversionRefused(t *testing.T) {
	gh := newFakeGitHub(t)
	cfg := testConfig(gh, t.TempDir())
	r := startSetup(t, cfg)
	status, page := get(t, r.base+"/")
	require.Equal(t, http.StatusOK, status)
	action := html.UnescapeString(formAction.FindStringSubmatch(page)[1])
	u, err := url.Parse(action)
	require.NoError(t, err)
	state := u.Query().Get("state")
	require.NotEmpty(t, state)

	status, page = get(t, r.base+CallbackPath+"?code=expired&state="+state)
	assert.Equal(t, http.StatusBadGateway, status)
	assert.Contains(t, page, "404 Not Found")
	assert.NotContains(t, page, "expired", "the code is not echoed")
	assert.Equal(t, 1, gh.conversionCalls())
	assert.False(t, r.isFinished())

	resp, page := pressCreate(t, r.base+"/")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	_, err = r.wait(t)
	require.NoError(t, err)
}

// The page answers only to an IP address or localhost: a page reached by
// another name may be a DNS rebinding attack reading the state.
func TestOtherHostsRefused(t *testing.T) {
	gh := newFakeGitHub(t)
	r := startSetup(t, testConfig(gh, t.TempDir()))
	for host, want := range map[string]int{
		"attacker.example": http.StatusMisdirectedRequest,
		"localhost:3000":   http.StatusOK,
		"[::1]:3000":       http.StatusOK,
	} {
		req, err := http.NewRequest(http.MethodGet, r.base+"/", nil)
		require.NoError(t, err)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode, host)
		if want == http.StatusOK {
			assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "form-action 'self' "+gh.URL())
			assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
		}
	}
}

// Run stops, saying so, when its context ends first.
func TestRunStopsWithContext(t *testing.T) {
	gh := newFakeGitHub(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Run(ctx, l, testConfig(gh, t.TempDir()), io.Discard)
	assert.ErrorContains(t, err, "stopped before an App was registered")
}

func TestResolveURLs(t *testing.T) {
	tests := map[string]struct {
		in       string
		web, api string
		err      string
	}{
		"default":           {in: "", web: "https://github.com", api: "https://api.github.com/"},
		"github.com":        {in: "https://github.com/", web: "https://github.com", api: "https://api.github.com/"},
		"enterprise":        {in: "https://ghe.example.com", web: "https://ghe.example.com", api: "https://ghe.example.com/api/v3/"},
		"enterprise, slash": {in: "https://ghe.example.com/", web: "https://ghe.example.com", api: "https://ghe.example.com/api/v3/"},
		"enterprise, port":  {in: "http://127.0.0.1:8080", web: "http://127.0.0.1:8080", api: "http://127.0.0.1:8080/api/v3/"},
		"not a URL":         {in: "ghe.example.com", err: "want the web URL"},
		"query":             {in: "https://ghe.example.com/?x=1", err: "want the web URL"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := resolveURLs(tc.in)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, githubURLs{web: tc.web, api: tc.api}, got)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	gh := newFakeGitHub(t)
	dir := t.TempDir()
	tests := map[string]struct {
		change func(*Config)
		err    string
	}{
		"no webhook URL":       {func(c *Config) { c.WebhookURL = "" }, "webhook URL"},
		"relative webhook URL": {func(c *Config) { c.WebhookURL = "/api/github/hook" }, "want an absolute URL"},
		"bad org":              {func(c *Config) { c.Org = "acme/../x" }, "not a GitHub organization name"},
		"missing folder":       {func(c *Config) { c.Path = filepath.Join(dir, "nowhere", "bot.yaml") }, "the folder of"},
		"bad manifest":         {func(c *Config) { c.Manifest = []byte("name: [") }, "read the App manifest"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(gh, dir)
			tc.change(&cfg)
			_, err := newFlow(cfg, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3000}, io.Discard)
			assert.ErrorContains(t, err, tc.err)
		})
	}
}

// An unspecified listen address is reached, and redirected to, on 127.0.0.1.
func TestPageBase(t *testing.T) {
	got, err := pageBase(&net.TCPAddr{IP: net.IPv4zero, Port: 3000})
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:3000", got)
	got, err = pageBase(&net.TCPAddr{IP: net.IPv6loopback, Port: 3000})
	require.NoError(t, err)
	assert.Equal(t, "http://[::1]:3000", got)
}
