// Package githubtest is a fake GitHub for tests: an HTTP server on loopback
// that speaks GitHub's REST shapes (GitHub Enterprise layout, API under
// /api/v3/), issues App installation tokens, delivers signed webhooks and
// serves the repositories it knows over Git smart HTTP. The real go-github
// client, go-githubapp's client creator and ghinstallation work against it
// unchanged.
//
// Responses are encoded with go-github's own types. Everything a test can
// call is safe for concurrent use with the bot's requests.
//
// A test sets up what GitHub would hold, points the bot at it, sends it
// events and looks at what the bot did:
//
//	g := githubtest.New(t)
//	inst := g.AddInstallation("acme")
//	repo := g.AddRepo(inst, "acme/app", "main", gitDir)
//	cc := githubapp.NewClientCreator(g.APIURL(), g.URL()+"/api/graphql", g.AppID(), []byte(g.PrivateKeyPEM()))
//	g.SetWebhookURL(bot.URL + githubapp.DefaultWebhookRoute) // the bot's server, with g.WebhookSecret()
//	g.Deliver("push", g.PushPayload(repo, "main", before, after))
//	runs := g.CheckRuns(repo)
package githubtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// GitHub is the fake. Make it with New.
type GitHub struct {
	t      testing.TB
	srv    *httptest.Server
	key    *rsa.PrivateKey
	keyPEM string
	secret string
	start  time.Time
	hooks  *http.Client // sends webhooks
	sends  sync.WaitGroup

	mu            sync.Mutex
	seq           int64 // the last ID given out, for every kind of object
	webhookURL    string
	installations []*installation
	repos         map[string]*repoState // by lower-case full name
	tokens        map[string]token
	named         map[string]int64 // stable IDs of things known by name, e.g. users
	rateReset     time.Time        // the end of the hour rateUsed counts
	rateUsed      map[int64]int    // REST calls per installation (0: the App, -1: no one)
	requests      []Request
	primaryLeft   int
	primaryReset  time.Time
	secondaryLeft int
	retryAfter    time.Duration
	failures      []failure
	deliveries    []*delivery
	logged        chan struct{} // closed and replaced whenever a delivery is logged
}

// Repo is a repository of an installation, as AddRepo made it.
type Repo struct {
	FullName, Owner, Name, DefaultBranch string
	// CloneURL serves the repository over Git smart HTTP; it asks for HTTP
	// Basic auth x-access-token:<installation token>.
	CloneURL string
	// HTMLURL is the repository's page, URL()+"/owner/name".
	HTMLURL string
	// GitDir is the repository on disk that CloneURL serves and that
	// branches and commits are read from.
	GitDir string
	ID     int64
	// InstallationID is the installation AddRepo added it to.
	InstallationID int64
}

// Request is one REST request the fake answered.
type Request struct {
	Method string
	// Path is the path under the API root, e.g. "/repos/acme/app/check-runs".
	Path  string
	Query string
	// Status is the HTTP status code of the answer.
	Status int
	// InstallationID is the installation whose token authenticated the
	// request; 0 for App JWTs and unauthenticated requests.
	InstallationID int64
}

type installation struct {
	id      int64
	account string
	created time.Time
}

type repoState struct {
	repo     *Repo
	attached bool // in its installation; RemoveRepo detaches it
	runs     []*CheckRun
	writes   []CheckRunWrite
	comments []Comment
	// reactions by comment ID, each a content given by the bot
	reactions map[int64][]reaction
	pulls     []pull
	roles     map[string]string // lower-case login → role name
	suites    map[string]int64  // the App's check suite of each commit
}

type failure struct {
	pattern string
	left    int
	status  int
}

const (
	appID   = 1000
	appSlug = "pvnbot-test"
	appName = "pvnbot test"
	// rateLimit is the hourly REST budget of each installation, as
	// GitHub's for installations of an App on github.com.
	rateLimit = 5000
)

// New starts the fake on loopback and stops it when the test ends.
func New(t testing.TB) *GitHub {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("githubtest: generate App key: %v", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	g := &GitHub{
		t:      t,
		key:    key,
		keyPEM: string(keyPEM),
		secret: randomHex(20),
		start:  time.Now(),
		hooks:  &http.Client{Timeout: hookTimeout, Transport: &http.Transport{}},
		seq:    appID,
		repos:  map[string]*repoState{},
		tokens: map[string]token{},
		named:  map[string]int64{},
		logged: make(chan struct{}),
	}
	mux := http.NewServeMux()
	g.routes(mux)
	mux.HandleFunc("/git/", g.serveGit)
	g.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		// Close waits for the handlers that may start redeliveries, so
		// that every send has started before Wait.
		g.srv.Close()
		g.sends.Wait()
		g.hooks.CloseIdleConnections()
	})
	return g
}

// URL is the base of the fake, e.g. http://127.0.0.1:PORT, without a
// trailing slash. The REST API is at APIURL(), Git at URL()+"/git/".
func (g *GitHub) URL() string { return g.srv.URL }

// APIURL is the REST API's base: URL()+"/api/v3/".
func (g *GitHub) APIURL() string { return g.srv.URL + "/api/v3/" }

// AppID is the GitHub App's ID, the issuer its JWTs must carry.
func (g *GitHub) AppID() int64 { return appID }

// AppSlug is the App's slug; its comments are by BotLogin().
func (g *GitHub) AppSlug() string { return appSlug }

// BotLogin is the login of the App's bot user, who writes its comments and
// reactions: AppSlug()+"[bot]".
func (g *GitHub) BotLogin() string { return appSlug + "[bot]" }

// PrivateKeyPEM is the App's RSA private key (PKCS#1 PEM).
func (g *GitHub) PrivateKeyPEM() string { return g.keyPEM }

// WebhookSecret signs every webhook delivery.
func (g *GitHub) WebhookSecret() string { return g.secret }

// SetWebhookURL sets where Deliver and redeliveries send.
func (g *GitHub) SetWebhookURL(url string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.webhookURL = url
}

// AddInstallation installs the App on an account (user or organization)
// and returns the installation ID.
func (g *GitHub) AddInstallation(account string) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, in := range g.installations {
		if strings.EqualFold(in.account, account) {
			g.t.Fatalf("githubtest: AddInstallation(%q): the App is already installed on that account", account)
		}
	}
	in := &installation{id: g.newID(), account: account, created: time.Now()}
	g.userID(account)
	g.installations = append(g.installations, in)
	return in.id
}

// AddRepo adds repository fullName ("owner/name") to an installation whose
// account is its owner. gitDir is a real Git repository on disk (worktree
// or bare); the fake serves it at the Repo's CloneURL and reads branches
// and commits from it. Adding a repository that RemoveRepo removed adds it
// back, with its ID and what the bot wrote to it.
func (g *GitHub) AddRepo(installationID int64, fullName, defaultBranch, gitDir string) *Repo {
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		g.t.Fatalf("githubtest: AddRepo(%q): want owner/name", fullName)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	in := g.installation(installationID)
	if in == nil {
		g.t.Fatalf("githubtest: AddRepo(%q): no installation %d", fullName, installationID)
	}
	if !strings.EqualFold(in.account, owner) {
		g.t.Fatalf("githubtest: AddRepo(%q): installation %d is on account %q, not %q", fullName, installationID, in.account, owner)
	}
	rs := g.repos[strings.ToLower(fullName)]
	switch {
	case rs == nil:
		rs = &repoState{repo: &Repo{ID: g.newID()}, reactions: map[int64][]reaction{}, roles: map[string]string{}}
		g.repos[strings.ToLower(fullName)] = rs
	case rs.attached:
		g.t.Fatalf("githubtest: AddRepo(%q): already added", fullName)
	}
	r := &Repo{
		FullName:       fullName,
		Owner:          owner,
		Name:           name,
		DefaultBranch:  defaultBranch,
		CloneURL:       g.srv.URL + "/git/" + fullName + ".git",
		HTMLURL:        g.srv.URL + "/" + fullName,
		GitDir:         gitDir,
		ID:             rs.repo.ID,
		InstallationID: installationID,
	}
	rs.repo, rs.attached = r, true
	return r
}

// RemoveRepo removes a repository from its installation: the REST API then
// answers 404 for it and Git refuses to serve it. What the bot wrote to it
// stays readable through CheckRuns, Comments and the like.
func (g *GitHub) RemoveRepo(fullName string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rs := g.repos[strings.ToLower(fullName)]
	if rs == nil {
		g.t.Fatalf("githubtest: RemoveRepo(%q): no such repository", fullName)
	}
	rs.attached = false
}

// RemoveInstallation uninstalls the App from an account: its tokens stop
// working, no new ones are issued and its repositories are removed (see
// RemoveRepo).
func (g *GitHub) RemoveInstallation(installationID int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.IndexFunc(g.installations, func(in *installation) bool { return in.id == installationID })
	if i < 0 {
		g.t.Fatalf("githubtest: RemoveInstallation(%d): no such installation", installationID)
	}
	g.installations = slices.Delete(g.installations, i, i+1)
	for _, rs := range g.repos {
		if rs.repo.InstallationID == installationID {
			rs.attached = false
		}
	}
}

// Requests is every REST request answered so far, in order.
func (g *GitHub) Requests() []Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Request(nil), g.requests...)
}

// Tokens is every installation token issued so far, for tests that look
// for them where they must not be.
func (g *GitHub) Tokens() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.tokens))
	for raw := range g.tokens {
		out = append(out, raw)
	}
	return out
}

// RateLimitNext makes the next n REST writes (POST, PATCH, PUT, DELETE,
// except installation token requests) answer 403 with
// X-RateLimit-Remaining: 0 and X-RateLimit-Reset: reset, GitHub's primary
// rate limit (go-github: *github.RateLimitError). Note that go-github then
// refuses further requests on that client on its own until reset.
func (g *GitHub) RateLimitNext(n int, reset time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.primaryLeft, g.primaryReset = n, reset
}

// SecondaryLimitNext makes the next n REST writes answer 403 for GitHub's
// secondary rate limit with Retry-After (go-github:
// *github.AbuseRateLimitError with RetryAfter). go-github then refuses
// further requests on that client on its own for retryAfter.
func (g *GitHub) SecondaryLimitNext(n int, retryAfter time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.secondaryLeft, g.retryAfter = n, retryAfter
}

// FailNext makes the next n requests whose path matches pattern answer
// status with GitHub's JSON error body, before authentication. pattern is
// a path.Match pattern against the REST path under the API root (e.g.
// "/repos/acme/app/check-runs/*") or against the whole URL path (e.g.
// "/git/acme/app.git/*").
func (g *GitHub) FailNext(pattern string, n int, status int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures = append(g.failures, failure{pattern: pattern, left: n, status: status})
}

// newID gives out the next ID. IDs are unique across kinds (installations,
// repositories, check runs, comments, deliveries, users), so that a test
// mixing two up does not pass by chance. Callers hold g.mu.
func (g *GitHub) newID() int64 {
	g.seq++
	return g.seq
}

// userID is the stable ID of a login. Callers hold g.mu.
func (g *GitHub) userID(login string) int64 {
	return g.stableID("user:" + strings.ToLower(login))
}

// stableID is the ID of the thing named key, the same on every call.
// Callers hold g.mu.
func (g *GitHub) stableID(key string) int64 {
	if id, ok := g.named[key]; ok {
		return id
	}
	id := g.newID()
	g.named[key] = id
	return id
}

// installation finds an installation by ID. Callers hold g.mu.
func (g *GitHub) installation(id int64) *installation {
	for _, in := range g.installations {
		if in.id == id {
			return in
		}
	}
	return nil
}

// repoState finds a repository by full name, attached or not. It fails the
// test for a Repo the fake did not make. Callers hold g.mu.
func (g *GitHub) repoState(r *Repo) *repoState {
	rs := g.repos[strings.ToLower(r.FullName)]
	if rs == nil {
		g.t.Fatalf("githubtest: unknown repository %q", r.FullName)
	}
	return rs
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("githubtest: random: %v", err))
	}
	return hex.EncodeToString(b)
}
