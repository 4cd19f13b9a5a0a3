package githubtest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-github/v89/github"
)

// repoFor finds the repository of a request's {owner}/{repo} that the
// caller's installation can see, answering 404 as GitHub does for any
// other. Callers hold g.mu to read or change the state; the Repo, which
// never changes, they may read without.
func (g *GitHub) repoFor(w http.ResponseWriter, r *http.Request, c caller) (*repoState, *Repo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rs := g.repos[strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo"))]
	if rs == nil || !rs.attached || rs.repo.InstallationID != c.installationID {
		writeError(w, http.StatusNotFound, "Not Found")
		return nil, nil
	}
	return rs, rs.repo
}

func (g *GitHub) getRepo(w http.ResponseWriter, r *http.Request, c caller) {
	_, repo := g.repoFor(w, r, c)
	if repo == nil {
		return
	}
	g.mu.Lock()
	v := g.repoJSON(repo)
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

// getBranch answers GET /repos/{owner}/{repo}/branches/{branch} from the
// repository on disk.
func (g *GitHub) getBranch(w http.ResponseWriter, r *http.Request, c caller) {
	_, repo := g.repoFor(w, r, c)
	if repo == nil {
		return
	}
	branch := r.PathValue("branch")
	commit, err := readCommit(repo.GitDir, plumbing.NewBranchReferenceName(branch).String())
	if err != nil {
		writeError(w, http.StatusNotFound, "Branch not found")
		return
	}
	writeJSON(w, http.StatusOK, github.Branch{
		Name:      &branch,
		Commit:    g.commitJSON(repo, commit),
		Protected: github.Ptr(false),
	})
}

// commits answers what lives under /repos/{owner}/{repo}/commits/: a
// commit, its check runs and its pull requests. The ref may hold slashes.
func (g *GitHub) commits(w http.ResponseWriter, r *http.Request, c caller) {
	rs, repo := g.repoFor(w, r, c)
	if rs == nil {
		return
	}
	ref := r.PathValue("ref")
	if ref, ok := strings.CutSuffix(ref, "/check-runs"); ok {
		g.listCheckRuns(w, r, rs, repo, ref)
		return
	}
	if sha, ok := strings.CutSuffix(ref, "/pulls"); ok {
		g.listPullsForCommit(w, r, rs, sha)
		return
	}
	commit, err := readCommit(repo.GitDir, ref)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+ref)
		return
	}
	writeJSON(w, http.StatusOK, g.commitJSON(repo, commit))
}

// readCommit resolves a revision (branch, tag, full ref or SHA) in the
// repository on disk.
func readCommit(gitDir, rev string) (*object.Commit, error) {
	repo, err := git.PlainOpenWithOptions(gitDir, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", gitDir, err)
	}
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: %w", rev, gitDir, err)
	}
	return repo.CommitObject(*h)
}

func (g *GitHub) commitJSON(r *Repo, c *object.Commit) *github.RepositoryCommit {
	sha := c.Hash.String()
	author := func(s object.Signature) *github.CommitAuthor {
		return &github.CommitAuthor{Name: github.Ptr(s.Name), Email: github.Ptr(s.Email), Date: &github.Timestamp{Time: s.When}}
	}
	var parents []*github.Commit
	for _, p := range c.ParentHashes {
		parents = append(parents, &github.Commit{SHA: github.Ptr(p.String()), URL: github.Ptr(g.APIURL() + "repos/" + r.FullName + "/commits/" + p.String())})
	}
	return &github.RepositoryCommit{
		SHA: &sha,
		Commit: &github.Commit{
			Author:    author(c.Author),
			Committer: author(c.Committer),
			Message:   github.Ptr(c.Message),
			Tree:      &github.Tree{SHA: github.Ptr(c.TreeHash.String())},
			URL:       github.Ptr(g.APIURL() + "repos/" + r.FullName + "/git/commits/" + sha),
		},
		Parents: parents,
		URL:     github.Ptr(g.APIURL() + "repos/" + r.FullName + "/commits/" + sha),
		HTMLURL: github.Ptr(r.HTMLURL + "/commit/" + sha),
	}
}

// pull is a pull request AddPull made.
type pull struct {
	id             int64
	number         int
	headSHA        string
	mergeCommitSHA string
}

// AddPull adds pull request number to r with head commit headSHA. With a
// mergeCommitSHA it is merged, by that commit. GET
// /repos/{owner}/{repo}/commits/{sha}/pulls lists it for both SHAs.
func (g *GitHub) AddPull(r *Repo, number int, headSHA, mergeCommitSHA string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rs := g.repoState(r)
	rs.pulls = append(rs.pulls, pull{id: g.newID(), number: number, headSHA: headSHA, mergeCommitSHA: mergeCommitSHA})
}

func (g *GitHub) listPullsForCommit(w http.ResponseWriter, r *http.Request, rs *repoState, sha string) {
	g.mu.Lock()
	var all []*github.PullRequest
	for _, p := range rs.pulls {
		if p.headSHA == sha || p.mergeCommitSHA == sha {
			all = append(all, g.pullJSON(rs.repo, p))
		}
	}
	g.mu.Unlock()
	from, to := pageOf(w, r, len(all))
	writeJSON(w, http.StatusOK, append([]*github.PullRequest{}, all[from:to]...))
}

func (g *GitHub) getPull(w http.ResponseWriter, r *http.Request, c caller) {
	rs, _ := g.repoFor(w, r, c)
	if rs == nil {
		return
	}
	number, _ := strconv.Atoi(r.PathValue("number"))
	g.mu.Lock()
	var v *github.PullRequest
	for _, p := range rs.pulls {
		if p.number == number {
			v = g.pullJSON(rs.repo, p)
		}
	}
	g.mu.Unlock()
	if v == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// pullJSON is a pull request as the REST API shows it. Callers hold g.mu.
func (g *GitHub) pullJSON(r *Repo, p pull) *github.PullRequest {
	merged := p.mergeCommitSHA != ""
	state := "open"
	if merged {
		state = "closed"
	}
	n := strconv.Itoa(p.number)
	v := &github.PullRequest{
		ID:      github.Ptr(p.id),
		Number:  github.Ptr(p.number),
		State:   github.Ptr(state),
		Title:   github.Ptr("Pull request #" + n),
		Merged:  github.Ptr(merged),
		URL:     github.Ptr(g.APIURL() + "repos/" + r.FullName + "/pulls/" + n),
		HTMLURL: github.Ptr(r.HTMLURL + "/pull/" + n),
		Head:    &github.PullRequestBranch{SHA: github.Ptr(p.headSHA), Ref: github.Ptr("pull-" + n), Repo: g.repoJSON(r)},
		Base:    &github.PullRequestBranch{Ref: github.Ptr(r.DefaultBranch), Repo: g.repoJSON(r)},
	}
	if merged {
		v.MergeCommitSHA = github.Ptr(p.mergeCommitSHA)
	}
	return v
}

// Comment is an issue or pull request comment the bot created.
type Comment struct {
	ID     int64
	Number int
	Body   string
	User   string
}

func (g *GitHub) createComment(w http.ResponseWriter, r *http.Request, c caller) {
	rs, _ := g.repoFor(w, r, c)
	if rs == nil {
		return
	}
	number, err := strconv.Atoi(r.PathValue("number"))
	if err != nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	var body github.IssueComment
	if !decode(w, r, &body) {
		return
	}
	if body.GetBody() == "" {
		writeJSON(w, http.StatusUnprocessableEntity, github.ErrorResponse{
			Message:          "Validation Failed",
			Errors:           []github.Error{{Resource: "IssueComment", Field: "body", Code: "missing_field"}},
			DocumentationURL: docsURL,
		})
		return
	}
	g.mu.Lock()
	cm := Comment{ID: g.newID(), Number: number, Body: body.GetBody(), User: g.BotLogin()}
	rs.comments = append(rs.comments, cm)
	v := g.commentJSON(rs.repo, cm)
	g.mu.Unlock()
	writeJSON(w, http.StatusCreated, v)
}

func (g *GitHub) listComments(w http.ResponseWriter, r *http.Request, c caller) {
	rs, _ := g.repoFor(w, r, c)
	if rs == nil {
		return
	}
	number, _ := strconv.Atoi(r.PathValue("number"))
	g.mu.Lock()
	all := []*github.IssueComment{}
	for _, cm := range rs.comments {
		if cm.Number == number {
			all = append(all, g.commentJSON(rs.repo, cm))
		}
	}
	g.mu.Unlock()
	from, to := pageOf(w, r, len(all))
	writeJSON(w, http.StatusOK, all[from:to])
}

// commentJSON is a comment as the REST API shows it. Callers hold g.mu.
func (g *GitHub) commentJSON(r *Repo, cm Comment) *github.IssueComment {
	id, n := itoa(cm.ID), strconv.Itoa(cm.Number)
	return &github.IssueComment{
		ID:                github.Ptr(cm.ID),
		Body:              github.Ptr(cm.Body),
		User:              g.userJSON(cm.User, "Bot"),
		AuthorAssociation: github.Ptr("NONE"),
		URL:               github.Ptr(g.APIURL() + "repos/" + r.FullName + "/issues/comments/" + id),
		HTMLURL:           github.Ptr(r.HTMLURL + "/issues/" + n + "#issuecomment-" + id),
		IssueURL:          github.Ptr(g.APIURL() + "repos/" + r.FullName + "/issues/" + n),
	}
}

// Comments is what the bot commented on issue or pull request number of r,
// in order.
func (g *GitHub) Comments(r *Repo, number int) []Comment {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Comment
	for _, cm := range g.repoState(r).comments {
		if cm.Number == number {
			out = append(out, cm)
		}
	}
	return out
}

// reaction is one the bot gave.
type reaction struct {
	id      int64
	content string
}

// reactionContents are the reactions GitHub knows.
var reactionContents = map[string]bool{"+1": true, "-1": true, "laugh": true, "confused": true, "heart": true, "hooray": true, "rocket": true, "eyes": true}

// createReaction answers POST .../issues/comments/{id}/reactions: 201 for
// a new reaction, 200 with the existing one when the bot already gave that
// content, as GitHub does.
func (g *GitHub) createReaction(w http.ResponseWriter, r *http.Request, c caller) {
	rs, _ := g.repoFor(w, r, c)
	if rs == nil {
		return
	}
	commentID, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var body github.Reaction
	if !decode(w, r, &body) {
		return
	}
	content := body.GetContent()
	if !reactionContents[content] {
		invalid(w, "%q is not a valid reaction content", content)
		return
	}
	g.mu.Lock()
	status := http.StatusOK
	var rc *reaction
	for i, have := range rs.reactions[commentID] {
		if have.content == content {
			rc = &rs.reactions[commentID][i]
		}
	}
	if rc == nil {
		status = http.StatusCreated
		rs.reactions[commentID] = append(rs.reactions[commentID], reaction{id: g.newID(), content: content})
		rc = &rs.reactions[commentID][len(rs.reactions[commentID])-1]
	}
	v := github.Reaction{ID: github.Ptr(rc.id), User: g.userJSON(g.BotLogin(), "Bot"), Content: github.Ptr(rc.content)}
	g.mu.Unlock()
	writeJSON(w, status, v)
}

// Reactions is the contents of the reactions the bot gave to comment
// commentID of r, in order.
func (g *GitHub) Reactions(r *Repo, commentID int64) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, rc := range g.repoState(r).reactions[commentID] {
		out = append(out, rc.content)
	}
	return out
}

// permissionOf folds a role into the legacy permission GitHub reports
// next to it.
var permissionOf = map[string]string{
	"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read", "none": "none",
}

// SetPermission gives user role roleName (admin, maintain, write, triage,
// read or none) on r.
func (g *GitHub) SetPermission(r *Repo, user, roleName string) {
	if _, ok := permissionOf[roleName]; !ok {
		g.t.Fatalf("githubtest: SetPermission(%q): unknown role %q", user, roleName)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.repoState(r).roles[strings.ToLower(user)] = roleName
}

// getPermission answers GET .../collaborators/{user}/permission. A user
// never given a role has none: GitHub answers 200 with permission "none"
// for an account without access to a private repository (its 404 is for
// logins that are no account; FailNext can make one).
func (g *GitHub) getPermission(w http.ResponseWriter, r *http.Request, c caller) {
	rs, _ := g.repoFor(w, r, c)
	if rs == nil {
		return
	}
	user := r.PathValue("user")
	g.mu.Lock()
	role, ok := rs.roles[strings.ToLower(user)]
	if !ok {
		role = "none"
	}
	v := github.RepositoryPermissionLevel{
		Permission: github.Ptr(permissionOf[role]),
		RoleName:   github.Ptr(role),
		User:       g.userJSON(user, "User"),
	}
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
