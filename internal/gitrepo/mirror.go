package gitrepo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/http"
)

// TokenUser is the user name GitHub expects with an installation token.
const TokenUser = "x-access-token"

// Mirror keeps a bare clone of each remote repository under a cache
// directory and fetches commits into it on demand.
type Mirror struct {
	dir string

	mu    sync.Mutex
	repos map[string]*mirrorRepo // by directory name
}

type mirrorRepo struct {
	mu   sync.Mutex // held while opening and fetching
	repo *Repo
}

// NewMirror returns a Mirror keeping its clones under dir, one directory per
// remote URL.
func NewMirror(dir string) *Mirror {
	return &Mirror{dir: dir, repos: make(map[string]*mirrorRepo)}
}

// Sync makes sure commit sha of the repository at remoteURL is in the local
// clone and returns the clone. When the commit is missing, it fetches every
// branch; when the commit is on none of them any more, it fetches the commit
// itself. With a token, the fetch authenticates as x-access-token:<token>
// over HTTPS. Errors never contain the token nor credentials from the URL;
// they still match context.Canceled, context.DeadlineExceeded and go-git's
// transport.Err* with errors.Is. The returned Repo belongs to the Mirror and
// is the same for every call with the same URL; do not Close it.
func (m *Mirror) Sync(ctx context.Context, remoteURL, sha, token string) (*Repo, error) {
	shown := redactURL(remoteURL)
	if !plumbing.IsHash(sha) {
		return nil, fmt.Errorf("sync %s: %q is not a full commit hash", shown, sha)
	}
	mr := m.entry(remoteURL)
	mr.mu.Lock()
	defer mr.mu.Unlock()

	if mr.repo == nil {
		repo, err := m.openOrInit(remoteURL)
		if err != nil {
			return nil, scrub(err, remoteURL, token)
		}
		mr.repo = repo
	}
	repo := mr.repo
	if repo.HasCommit(sha) {
		return repo, nil
	}

	var auth transport.AuthMethod
	if token != "" {
		auth = &http.BasicAuth{Username: TokenUser, Password: token}
	}
	branches := config.RefSpec("+refs/heads/*:refs/heads/*")
	if err := repo.fetch(ctx, remoteURL, auth, branches); err != nil {
		return nil, scrub(fmt.Errorf("fetch branches of %s: %w", remoteURL, err), remoteURL, token)
	}
	if repo.HasCommit(sha) {
		return repo, nil
	}
	exact := config.RefSpec("+" + sha + ":refs/pvnbot/commits/" + sha)
	if err := repo.fetch(ctx, remoteURL, auth, exact); err != nil {
		return nil, scrub(fmt.Errorf("fetch commit %s from %s (it is on no branch): %w", sha, remoteURL, err), remoteURL, token)
	}
	if !repo.HasCommit(sha) {
		return nil, fmt.Errorf("fetch commit %s from %s: not found after fetching", sha, shown)
	}
	return repo, nil
}

// Repo returns the local clone of the repository at remoteURL, created
// empty when there is none yet, without fetching anything: what jobs check
// out their commits from (Sync brings the commits in). It is the Repo Sync
// returns; do not Close it.
func (m *Mirror) Repo(remoteURL string) (*Repo, error) {
	mr := m.entry(remoteURL)
	mr.mu.Lock()
	defer mr.mu.Unlock()
	if mr.repo == nil {
		repo, err := m.openOrInit(remoteURL)
		if err != nil {
			return nil, scrub(err, remoteURL, "")
		}
		mr.repo = repo
	}
	return mr.repo, nil
}

func (m *Mirror) entry(remoteURL string) *mirrorRepo {
	m.mu.Lock()
	defer m.mu.Unlock()
	name := mirrorDirName(remoteURL)
	mr, ok := m.repos[name]
	if !ok {
		mr = &mirrorRepo{}
		m.repos[name] = mr
	}
	return mr
}

func (m *Mirror) openOrInit(remoteURL string) (*Repo, error) {
	dir := filepath.Join(m.dir, mirrorDirName(remoteURL))
	if _, err := os.Stat(dir); err == nil {
		return Open(dir)
	}
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create mirror directory: %w", err)
	}
	// Initialise aside and rename, so a crash never leaves a directory that
	// looks like a clone but is not one.
	tmp, err := os.MkdirTemp(m.dir, ".init-")
	if err != nil {
		return nil, fmt.Errorf("create mirror directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	g, err := git.PlainInit(tmp, true)
	if err != nil {
		return nil, fmt.Errorf("init mirror of %s: %w", remoteURL, err)
	}
	if _, err := g.CreateRemote(&config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{redactURL(remoteURL)}}); err != nil {
		return nil, fmt.Errorf("init mirror of %s: %w", remoteURL, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("init mirror of %s: %w", remoteURL, err)
	}
	return Open(dir)
}

func (r *Repo) fetch(ctx context.Context, remoteURL string, auth transport.AuthMethod, spec config.RefSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.git.FetchContext(ctx, &git.FetchOptions{
		RemoteURL: remoteURL,
		RefSpecs:  []config.RefSpec{spec},
		Auth:      auth,
		Tags:      git.NoTags,
		Force:     true,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return err
}

// mirrorDirName is readable (host and path) and unique (a hash of the URL
// without credentials).
func mirrorDirName(remoteURL string) string {
	clean := redactURL(remoteURL)
	sum := sha256.Sum256([]byte(clean))
	readable := clean
	if u, err := url.Parse(clean); err == nil && u.Host != "" {
		readable = u.Host + u.Path
	}
	readable = strings.Trim(unsafeName.ReplaceAllString(readable, "_"), "_.")
	if len(readable) > 60 {
		readable = readable[len(readable)-60:]
	}
	return readable + "-" + hex.EncodeToString(sum[:6])
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// userinfo matches credentials in any URL inside a message.
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@`)

// redactURL removes credentials from a URL.
func redactURL(s string) string {
	return userinfo.ReplaceAllString(s, "${1}")
}

// sentinels are the errors callers may test for; a scrubbed error keeps them.
var sentinels = []error{
	context.Canceled,
	context.DeadlineExceeded,
	transport.ErrAuthenticationRequired,
	transport.ErrAuthorizationFailed,
	transport.ErrRepositoryNotFound,
	transport.ErrEmptyRemoteRepository,
	plumbing.ErrObjectNotFound,
}

// scrub rewrites err's message without credentials. The original chain is
// dropped (a wrapped error could still print the token); known sentinels
// stay reachable for errors.Is.
func scrub(err error, remoteURL, token string) error {
	msg := err.Error()
	for _, secret := range []string{token, urlPassword(remoteURL)} {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "***")
		}
	}
	msg = redactURL(msg)
	var kept error
	for _, s := range sentinels {
		if errors.Is(err, s) {
			kept = s
			break
		}
	}
	return &scrubbedError{msg: msg, kept: kept}
}

func urlPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return ""
	}
	if p, ok := u.User.Password(); ok {
		return p
	}
	if name := u.User.Username(); len(name) >= 20 {
		return name // a token given as the user name
	}
	return ""
}

type scrubbedError struct {
	msg  string
	kept error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.kept }
