package githubtest

import (
	"net/http"
	"net/http/cgi"
	"os/exec"
	"strings"
)

// gitUser is the user name of installation tokens in Git's HTTP Basic auth.
const gitUser = "x-access-token"

// serveGit serves /git/{owner}/{name}.git/… over Git smart HTTP with git
// http-backend, to a client authenticated as x-access-token:<token> whose
// installation has the repository. Like GitHub, it answers 401 with a
// Basic challenge without valid credentials and 404 for a repository the
// token cannot see.
func (g *GitHub) serveGit(w http.ResponseWriter, r *http.Request) {
	owner, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/git/"), "/")
	dotGit, _, _ := strings.Cut(rest, "/")
	name, ok := strings.CutSuffix(dotGit, ".git")
	if !ok || owner == "" || name == "" {
		http.NotFound(w, r)
		return
	}
	if status := g.injectedFailure(r.URL.Path); status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	user, pass, ok := r.BasicAuth()
	installationID, valid := g.tokenInstallation(pass)
	if !ok || user != gitUser || !valid {
		w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
		http.Error(w, "Invalid username or token. Password authentication is not supported for Git operations.", http.StatusUnauthorized)
		return
	}
	g.mu.Lock()
	rs := g.repos[strings.ToLower(owner+"/"+name)]
	var gitDir string
	if rs != nil && rs.attached && rs.repo.InstallationID == installationID {
		gitDir = rs.repo.GitDir
	}
	g.mu.Unlock()
	if gitDir == "" {
		http.Error(w, "Repository not found.", http.StatusNotFound)
		return
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		http.Error(w, "githubtest: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		// http-backend finds the repository at GIT_PROJECT_ROOT+PATH_INFO
		// once it strips the service's suffix (e.g. /info/refs): with the
		// root at .../name.git, that is GIT_PROJECT_ROOT itself.
		Root: "/git/" + owner + "/" + dotGit,
		Env: []string{
			"GIT_PROJECT_ROOT=" + gitDir,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			// GitHub lets a client fetch any commit by its SHA, not only
			// branch and tag tips; the test repository may belong to
			// another user than the test.
			"GIT_CONFIG_COUNT=2",
			"GIT_CONFIG_KEY_0=uploadpack.allowAnySHA1InWant",
			"GIT_CONFIG_VALUE_0=true",
			"GIT_CONFIG_KEY_1=safe.directory",
			"GIT_CONFIG_VALUE_1=*",
		},
		InheritEnv: []string{"PATH"},
	}
	h.ServeHTTP(w, r)
}
