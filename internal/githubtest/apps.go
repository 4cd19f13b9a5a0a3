package githubtest

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-github/v89/github"
)

// token is an installation access token the fake issued.
type token struct {
	installationID int64
	expires        time.Time
}

// tokenLifetime is how long an installation token is valid, as on GitHub.
const tokenLifetime = time.Hour

// permissions are what the App asks for (SPEC §5).
var permissions = github.InstallationPermissions{
	Checks:       github.Ptr("write"),
	Contents:     github.Ptr("read"),
	Metadata:     github.Ptr("read"),
	PullRequests: github.Ptr("write"),
	Issues:       github.Ptr("write"),
}

// checkToken finds the installation of the request's token ("token X", as
// ghinstallation sends it, or "Bearer X").
func (g *GitHub) checkToken(r *http.Request) (installationID int64, ok bool, msg string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return 0, false, "Requires authentication"
	}
	raw, found := strings.CutPrefix(h, "token ")
	if !found {
		raw, found = strings.CutPrefix(h, "Bearer ")
	}
	if !found {
		return 0, false, "Bad credentials"
	}
	id, valid := g.tokenInstallation(raw)
	if !valid {
		return 0, false, "Bad credentials"
	}
	return id, true, ""
}

// tokenInstallation is the installation of an unexpired token whose
// installation still exists.
func (g *GitHub) tokenInstallation(raw string) (int64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	tok, ok := g.tokens[raw]
	if !ok || time.Now().After(tok.expires) || g.installation(tok.installationID) == nil {
		return 0, false
	}
	return tok.installationID, true
}

func (g *GitHub) createToken(w http.ResponseWriter, r *http.Request, _ caller) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	g.mu.Lock()
	in := g.installation(id)
	raw := "ghs_" + randomHex(18)
	expires := time.Now().Add(tokenLifetime).Truncate(time.Second)
	if in != nil {
		g.tokens[raw] = token{installationID: id, expires: expires}
	}
	g.mu.Unlock()
	if in == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusCreated, github.InstallationToken{
		Token:       &raw,
		ExpiresAt:   &github.Timestamp{Time: expires},
		Permissions: &permissions,
	})
}

func (g *GitHub) getApp(w http.ResponseWriter, _ *http.Request, _ caller) {
	writeJSON(w, http.StatusOK, g.app())
}

func (g *GitHub) app() *github.App {
	return &github.App{
		ID:          github.Ptr(int64(appID)),
		Slug:        github.Ptr(appSlug),
		Name:        github.Ptr(appName),
		HTMLURL:     github.Ptr(g.srv.URL + "/apps/" + appSlug),
		Permissions: &permissions,
		Events:      []string{"check_run", "issue_comment", "pull_request", "push"},
	}
}

func (g *GitHub) listInstallations(w http.ResponseWriter, r *http.Request, _ caller) {
	g.mu.Lock()
	all := make([]*github.Installation, 0, len(g.installations))
	for _, in := range g.installations {
		all = append(all, g.installationJSON(in))
	}
	g.mu.Unlock()
	from, to := pageOf(w, r, len(all))
	writeJSON(w, http.StatusOK, all[from:to])
}

func (g *GitHub) getInstallation(w http.ResponseWriter, r *http.Request, _ caller) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	g.mu.Lock()
	var v *github.Installation
	if in := g.installation(id); in != nil {
		v = g.installationJSON(in)
	}
	g.mu.Unlock()
	if v == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// getRepoInstallation answers GET /repos/{owner}/{repo}/installation.
func (g *GitHub) getRepoInstallation(w http.ResponseWriter, r *http.Request, _ caller) {
	g.mu.Lock()
	var v *github.Installation
	rs := g.repos[strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo"))]
	if rs != nil && rs.attached {
		if in := g.installation(rs.repo.InstallationID); in != nil {
			v = g.installationJSON(in)
		}
	}
	g.mu.Unlock()
	if v == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// getAccountInstallation answers GET /orgs/{owner}/installation and GET
// /users/{owner}/installation alike.
func (g *GitHub) getAccountInstallation(w http.ResponseWriter, r *http.Request, _ caller) {
	g.mu.Lock()
	var v *github.Installation
	for _, in := range g.installations {
		if strings.EqualFold(in.account, r.PathValue("owner")) {
			v = g.installationJSON(in)
		}
	}
	g.mu.Unlock()
	if v == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// listInstallationRepos answers GET /installation/repositories: the
// repositories of the token's installation, in the order they were added.
func (g *GitHub) listInstallationRepos(w http.ResponseWriter, r *http.Request, c caller) {
	g.mu.Lock()
	all := []*github.Repository{}
	for _, rs := range g.sortedRepos() {
		if rs.attached && rs.repo.InstallationID == c.installationID {
			all = append(all, g.repoJSON(rs.repo))
		}
	}
	g.mu.Unlock()
	from, to := pageOf(w, r, len(all))
	writeJSON(w, http.StatusOK, github.ListRepositories{TotalCount: github.Ptr(len(all)), Repositories: all[from:to]})
}

// sortedRepos is every repository by ID. Callers hold g.mu.
func (g *GitHub) sortedRepos() []*repoState {
	all := make([]*repoState, 0, len(g.repos))
	for _, rs := range g.repos {
		all = append(all, rs)
	}
	slices.SortFunc(all, func(a, b *repoState) int { return cmp.Compare(a.repo.ID, b.repo.ID) })
	return all
}

// installationJSON is an installation as the REST API shows it. Callers
// hold g.mu.
func (g *GitHub) installationJSON(in *installation) *github.Installation {
	ts := &github.Timestamp{Time: in.created}
	return &github.Installation{
		ID:                  github.Ptr(in.id),
		AppID:               github.Ptr(int64(appID)),
		AppSlug:             github.Ptr(appSlug),
		TargetID:            github.Ptr(g.userID(in.account)),
		TargetType:          github.Ptr("Organization"),
		Account:             g.userJSON(in.account, "Organization"),
		AccessTokensURL:     github.Ptr(g.APIURL() + "app/installations/" + itoa(in.id) + "/access_tokens"),
		RepositoriesURL:     github.Ptr(g.APIURL() + "installation/repositories"),
		HTMLURL:             github.Ptr(g.srv.URL + "/organizations/" + in.account + "/settings/installations/" + itoa(in.id)),
		RepositorySelection: github.Ptr("selected"),
		Events:              g.app().Events,
		Permissions:         &permissions,
		CreatedAt:           ts,
		UpdatedAt:           ts,
	}
}

// userJSON is a user or organization as the REST API shows it. Callers
// hold g.mu.
func (g *GitHub) userJSON(login, typ string) *github.User {
	return &github.User{
		Login:   github.Ptr(login),
		ID:      github.Ptr(g.userID(login)),
		Type:    github.Ptr(typ),
		URL:     github.Ptr(g.APIURL() + "users/" + login),
		HTMLURL: github.Ptr(g.srv.URL + "/" + login),
	}
}

// repoJSON is a repository as the REST API shows it. Callers hold g.mu.
func (g *GitHub) repoJSON(r *Repo) *github.Repository {
	return &github.Repository{
		ID:            github.Ptr(r.ID),
		Name:          github.Ptr(r.Name),
		FullName:      github.Ptr(r.FullName),
		Owner:         g.userJSON(r.Owner, "Organization"),
		Private:       github.Ptr(true),
		Visibility:    github.Ptr("private"),
		Fork:          github.Ptr(false),
		DefaultBranch: github.Ptr(r.DefaultBranch),
		URL:           github.Ptr(g.APIURL() + "repos/" + r.FullName),
		HTMLURL:       github.Ptr(r.HTMLURL),
		CloneURL:      github.Ptr(r.CloneURL),
	}
}
