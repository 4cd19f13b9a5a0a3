package setup

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeGitHub answers the two steps of GitHub's App manifest flow: the App
// creation page, which checks the manifest as GitHub does and sends the
// browser to its redirect_url with a code and the state it was given
// (GitHub first asks its user to confirm; this fake skips that), and the
// conversion of a code, once, into the App's credentials, in GitHub's JSON
// shape. It is a GitHub Enterprise Server: its API is under /api/v3/.
type fakeGitHub struct {
	srv *httptest.Server
	pem string

	mu          sync.Mutex
	manifests   []map[string]any // as posted
	paths       []string         // where they were posted
	codes       map[string]string
	secrets     []string // webhook secrets handed out
	conversions int      // conversion calls, good or not
	nextID      int64
}

var (
	keyOnce sync.Once
	keyPEM  string
)

// testKey is an RSA key in PEM, made once per test binary.
func testKey(t testing.TB) string {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	})
	return keyPEM
}

func newFakeGitHub(t testing.TB) *fakeGitHub {
	f := &fakeGitHub{pem: testKey(t), codes: map[string]string{}, nextID: 4242}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /settings/apps/new", f.newApp)
	mux.HandleFunc("POST /organizations/{org}/settings/apps/new", f.newApp)
	mux.HandleFunc("POST /api/v3/app-manifests/{code}/conversions", f.convert)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitHub) URL() string { return f.srv.URL }

// eventPermission is the permission each event of app.yml needs.
var eventPermission = map[string]string{
	"push": "contents", "pull_request": "pull_requests", "issue_comment": "issues", "check_run": "checks",
}

func (f *fakeGitHub) newApp(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.PostForm.Get("manifest")), &m); err != nil {
		invalid(w, "The configuration does not appear to be a valid GitHub App manifest.")
		return
	}
	redirect, _ := m["redirect_url"].(string)
	hook, _ := m["hook_attributes"].(map[string]any)
	perms, _ := m["default_permissions"].(map[string]any)
	var problems []string
	if s, _ := m["name"].(string); s == "" {
		problems = append(problems, "Name can't be blank")
	}
	if s, _ := m["url"].(string); s == "" {
		problems = append(problems, "Homepage URL can't be blank")
	}
	if s, _ := hook["url"].(string); s == "" {
		problems = append(problems, "Hook url can't be blank")
	}
	if redirect == "" {
		problems = append(problems, "Redirect url can't be blank")
	}
	events, _ := m["default_events"].([]any)
	for _, e := range events {
		name := fmt.Sprint(e)
		if name == "installation" || name == "installation_repositories" {
			problems = append(problems, "Default events unsupported: "+name)
			continue
		}
		if p, ok := eventPermission[name]; !ok || perms[p] == nil {
			problems = append(problems, "Default events are not supported by permissions: "+name)
		}
	}
	if len(problems) > 0 {
		invalid(w, strings.Join(problems, "; "))
		return
	}

	code := randomString(10)
	f.mu.Lock()
	f.manifests = append(f.manifests, m)
	f.paths = append(f.paths, r.URL.Path)
	f.codes[code] = m["name"].(string)
	f.mu.Unlock()
	u, err := url.Parse(redirect)
	if err != nil {
		invalid(w, "Redirect url is invalid")
		return
	}
	q := u.Query()
	q.Set("code", code)
	if s := r.URL.Query().Get("state"); s != "" {
		q.Set("state", s)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func invalid(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusUnprocessableEntity)
	fmt.Fprintf(w, "<h1>Invalid GitHub App configuration</h1><p>Error: %s</p>", msg)
}

func (f *fakeGitHub) convert(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("code")
	f.mu.Lock()
	f.conversions++
	name, ok := f.codes[code]
	delete(f.codes, code) // a code works once
	id := f.nextID
	f.nextID++
	secret := "whsec-" + randomString(16)
	if ok {
		f.secrets = append(f.secrets, secret)
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/apps/apps#create-a-github-app-from-a-manifest","status":"404"}`)
		return
	}
	slug := strings.ToLower(strings.ReplaceAll(name, " ", "-"))
	now := time.Now().UTC().Format(time.RFC3339)
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{
		"id": id, "slug": slug, "node_id": "MDM6QXBwNTk=", "name": name,
		"owner":       map[string]any{"login": "octocat", "id": 1, "type": "User"},
		"description": "", "external_url": "https://github.com/pvnbot/pvnbot",
		"html_url":   f.srv.URL + "/apps/" + slug,
		"created_at": now, "updated_at": now,
		"client_id": "Iv1.8a61f9b3a7aba766", "client_secret": "client-" + randomString(16),
		"webhook_secret": secret, "pem": f.pem,
		"permissions": map[string]any{"checks": "write"},
		"events":      []string{"push"},
	})
}

// posted returns the manifests posted so far and where.
func (f *fakeGitHub) posted() ([]map[string]any, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.manifests), slices.Clone(f.paths)
}

func (f *fakeGitHub) conversionCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conversions
}

func (f *fakeGitHub) lastSecret() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.secrets) == 0 {
		return ""
	}
	return f.secrets[len(f.secrets)-1]
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
