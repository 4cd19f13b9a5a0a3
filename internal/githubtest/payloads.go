package githubtest

import (
	"bytes"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/utils/merkletrie"
)

// templates are webhook payloads from GitHub's SDK team (octokit/webhooks,
// MIT, see testdata/LICENSE); the builders substitute what tests need and
// point every URL at the fake.
//
//go:embed testdata
var templates embed.FS

// zeroSHA is the before of a created ref and the after of a deleted one.
const zeroSHA = "0000000000000000000000000000000000000000"

// obj is a decoded JSON object.
type obj = map[string]any

// template decodes testdata/<name>.payload.json, keeping numbers exact.
func (g *GitHub) template(name string) obj {
	b, err := templates.ReadFile("testdata/" + name + ".payload.json")
	if err != nil {
		g.t.Fatalf("githubtest: %v", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var doc obj
	if err := d.Decode(&doc); err != nil {
		g.t.Fatalf("githubtest: decode %s: %v", name, err)
	}
	// Point the URLs at the fake first, so that renaming an owner named
	// like a host ("github") leaves them be.
	hosts := strings.NewReplacer(
		"https://api.github.com/", g.APIURL(),
		"https://github.com/", g.srv.URL+"/",
		"http://github.com/", g.srv.URL+"/",
	)
	replaceIn(doc, hosts)
	return doc
}

// finish encodes a payload.
func (g *GitHub) finish(doc obj) []byte {
	b, err := json.Marshal(doc)
	if err != nil {
		g.t.Fatalf("githubtest: encode payload: %v", err)
	}
	return b
}

// replaceIn applies r to every string inside v.
func replaceIn(v any, r *strings.Replacer) any {
	switch v := v.(type) {
	case string:
		return r.Replace(v)
	case obj:
		for k, e := range v {
			v[k] = replaceIn(e, r)
		}
	case []any:
		for i, e := range v {
			v[i] = replaceIn(e, r)
		}
	}
	return v
}

// nodeID is a GitHub global node ID in its legacy form, e.g. "04:User1".
func nodeID(kind string, id int64) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%02d:%s%d", len(kind), kind, id))
}

// setRepo makes the template's repository r: its names and URLs, its ID,
// default branch and clone URL. Callers hold g.mu.
func (g *GitHub) setRepo(repo obj, r *Repo) obj {
	oldFull, _ := repo["full_name"].(string)
	oldOwner, _, _ := strings.Cut(oldFull, "/")
	replaceIn(repo, strings.NewReplacer(oldFull, r.FullName, "/users/"+oldOwner, "/users/"+r.Owner, "/"+oldOwner, "/"+r.Owner))
	repo["id"], repo["node_id"] = r.ID, nodeID("Repository", r.ID)
	repo["name"], repo["full_name"] = r.Name, r.FullName
	repo["private"], repo["visibility"], repo["fork"] = true, "private", false
	repo["url"] = g.APIURL() + "repos/" + r.FullName
	repo["html_url"], repo["clone_url"] = r.HTMLURL, r.CloneURL
	repo["git_url"] = strings.Replace(r.CloneURL, "http://", "git://", 1)
	repo["ssh_url"] = "git@" + strings.TrimPrefix(g.srv.URL, "http://") + ":" + r.FullName + ".git"
	repo["svn_url"] = r.HTMLURL
	repo["default_branch"] = r.DefaultBranch
	repo["description"], repo["homepage"] = nil, nil
	if _, ok := repo["master_branch"]; ok {
		repo["master_branch"] = r.DefaultBranch
	}
	if owner, ok := repo["owner"].(obj); ok {
		g.setUser(owner, r.Owner, "Organization")
	}
	return repo
}

// setUser makes a template's user (sender, owner, comment author…) login.
// Callers hold g.mu.
func (g *GitHub) setUser(u obj, login, typ string) obj {
	if old, _ := u["login"].(string); old != "" {
		replaceIn(u, strings.NewReplacer("/"+old, "/"+login))
	}
	id := g.userID(login)
	u["login"], u["id"], u["node_id"], u["type"] = login, id, nodeID(typ, id), typ
	if _, ok := u["name"]; ok {
		u["name"] = login
	}
	if _, ok := u["email"]; ok {
		u["email"] = noreply(id, login)
	}
	return u
}

// noreply is a user's private commit email on GitHub.
func noreply(id int64, login string) string {
	return fmt.Sprintf("%d+%s@users.noreply.github.com", id, login)
}

// developer is who pushes, installs and opens pull requests when a builder
// is not told who.
const developer = "developer"

// setPeople makes the template's other people (sender, pusher, requester,
// an issue's author…) the developer and drops assignees, reviewers and
// milestones. Callers hold g.mu.
func (g *GitHub) setPeople(doc obj) {
	for _, key := range []string{"sender", "requester"} {
		if u, ok := doc[key].(obj); ok {
			g.setUser(u, developer, "User")
		}
	}
	if _, ok := doc["pusher"]; ok {
		doc["pusher"] = obj{"name": developer, "email": noreply(g.userID(developer), developer)}
	}
	for _, key := range []string{"issue", "pull_request"} {
		if it, ok := doc[key].(obj); ok {
			g.setUser(it["user"].(obj), developer, "User")
			it["assignee"], it["assignees"], it["milestone"] = nil, []any{}, nil
			if _, ok := it["requested_reviewers"]; ok {
				it["requested_reviewers"], it["requested_teams"] = []any{}, []any{}
			}
		}
	}
}

// retarget renames the template's repository (and its owner) to r in
// every string of doc, before the fields are set one by one.
func retarget(doc obj, r *Repo) {
	repo, _ := doc["repository"].(obj)
	oldFull, _ := repo["full_name"].(string)
	if oldFull != "" {
		replaceIn(doc, strings.NewReplacer(oldFull, r.FullName))
	}
}

// PushPayload is a push event (octokit's "with-installation" shape) of
// branch from before to after. before = 40 zeros is a new branch; after =
// 40 zeros its deletion. The head commit's message, tree, author and
// added/removed/modified files are read from r's repository when it has
// after.
func (g *GitHub) PushPayload(r *Repo, branch, before, after string) []byte {
	return g.push(r, "refs/heads/"+branch, before, after)
}

// TagPushPayload is the push event of a new tag at sha.
func (g *GitHub) TagPushPayload(r *Repo, tag, sha string) []byte {
	return g.push(r, "refs/tags/"+tag, zeroSHA, sha)
}

func (g *GitHub) push(r *Repo, ref, before, after string) []byte {
	doc := g.template("push/with-installation")
	head := g.template("push/with-new-branch")["head_commit"].(obj)
	retarget(doc, r)
	created, deleted := before == zeroSHA, after == zeroSHA
	doc["ref"], doc["before"], doc["after"] = ref, before, after
	doc["created"], doc["deleted"], doc["forced"], doc["base_ref"] = created, deleted, false, nil
	doc["compare"] = r.HTMLURL + "/compare/" + short(before) + "..." + short(after)
	if created {
		doc["compare"] = r.HTMLURL + "/commit/" + after
	}
	doc["commits"], doc["head_commit"] = []any{}, nil
	if !deleted {
		head["id"], head["url"] = after, r.HTMLURL+"/commit/"+after
		if c, err := readCommit(r.GitDir, after); err == nil {
			setHeadCommit(head, c)
		}
		doc["head_commit"] = head
		if strings.HasPrefix(ref, "refs/heads/") {
			doc["commits"] = []any{head}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.setPeople(doc)
	g.setRepo(doc["repository"].(obj), r)
	doc["installation"] = obj{"id": r.InstallationID, "node_id": nodeID("Installation", r.InstallationID)}
	return g.finish(doc)
}

func short(sha string) string { return sha[:min(12, len(sha))] }

// setHeadCommit fills a push's head_commit from the commit on disk.
func setHeadCommit(head obj, c *object.Commit) {
	person := func(s object.Signature) obj { return obj{"name": s.Name, "email": s.Email} }
	head["tree_id"], head["message"] = c.TreeHash.String(), c.Message
	head["timestamp"] = c.Committer.When.Format(time.RFC3339)
	head["author"], head["committer"] = person(c.Author), person(c.Committer)
	added, removed, modified := []any{}, []any{}, []any{}
	tree, _ := c.Tree()
	var parentTree *object.Tree
	if p, err := c.Parent(0); err == nil {
		parentTree, _ = p.Tree()
	}
	changes, _ := object.DiffTree(parentTree, tree)
	for _, ch := range changes {
		switch action, _ := ch.Action(); action {
		case merkletrie.Insert:
			added = append(added, ch.To.Name)
		case merkletrie.Delete:
			removed = append(removed, ch.From.Name)
		default:
			modified = append(modified, ch.To.Name)
		}
	}
	head["added"], head["removed"], head["modified"] = added, removed, modified
}

// InstallationPayload is an installation event (created, deleted,
// suspend…) of an installation with repos.
func (g *GitHub) InstallationPayload(action string, installationID int64, repos ...*Repo) []byte {
	name := "installation/created"
	if action == "deleted" {
		name = "installation/deleted"
	}
	doc := g.template(name)
	g.mu.Lock()
	defer g.mu.Unlock()
	doc["action"] = action
	g.setPeople(doc)
	g.setInstallation(doc["installation"].(obj), installationID)
	doc["repositories"] = g.repoRefs(repos)
	return g.finish(doc)
}

// InstallationReposPayload is an installation_repositories event (added
// or removed).
func (g *GitHub) InstallationReposPayload(action string, installationID int64, added, removed []*Repo) []byte {
	doc := g.template("installation_repositories/added")
	g.mu.Lock()
	defer g.mu.Unlock()
	doc["action"] = action
	g.setPeople(doc)
	g.setInstallation(doc["installation"].(obj), installationID)
	doc["repository_selection"] = "selected"
	doc["repositories_added"], doc["repositories_removed"] = g.repoRefs(added), g.repoRefs(removed)
	return g.finish(doc)
}

// setInstallation makes the template's installation the fake's. Callers
// hold g.mu.
func (g *GitHub) setInstallation(in obj, id int64) {
	inst := g.installation(id)
	if inst == nil {
		g.t.Fatalf("githubtest: no installation %d", id)
	}
	v := g.installationJSON(inst)
	in["id"], in["node_id"] = id, nodeID("Installation", id)
	in["app_id"], in["app_slug"] = v.GetAppID(), v.GetAppSlug()
	in["target_id"], in["target_type"] = v.GetTargetID(), v.GetTargetType()
	in["access_tokens_url"], in["repositories_url"], in["html_url"] = v.GetAccessTokensURL(), v.GetRepositoriesURL(), v.GetHTMLURL()
	in["repository_selection"], in["events"] = "selected", v.Events
	in["permissions"] = v.Permissions
	g.setUser(in["account"].(obj), inst.account, "Organization")
}

// repoRefs are repositories as installation events list them. Callers
// hold g.mu.
func (g *GitHub) repoRefs(repos []*Repo) []any {
	out := []any{}
	for _, r := range repos {
		out = append(out, obj{"id": r.ID, "node_id": nodeID("Repository", r.ID), "name": r.Name, "full_name": r.FullName, "private": true})
	}
	return out
}

// IssueCommentPayload is an issue_comment event (created, edited,
// deleted) on issue or pull request number of r, by user (of type
// userType: User or Bot).
func (g *GitHub) IssueCommentPayload(r *Repo, action string, number int, isPR bool, commentID int64, user, userType, body string) []byte {
	name := "issue_comment/created"
	if action == "edited" {
		name = "issue_comment/edited"
	}
	doc := g.template(name)
	retarget(doc, r)
	g.mu.Lock()
	defer g.mu.Unlock()
	doc["action"] = action
	g.setPeople(doc)
	n, cid := strconv.Itoa(number), itoa(commentID)
	api := g.APIURL() + "repos/" + r.FullName
	issue := doc["issue"].(obj)
	issue["number"], issue["url"], issue["comments_url"] = number, api+"/issues/"+n, api+"/issues/"+n+"/comments"
	issue["labels_url"], issue["events_url"] = api+"/issues/"+n+"/labels{/name}", api+"/issues/"+n+"/events"
	issue["html_url"] = r.HTMLURL + "/issues/" + n
	delete(issue, "pull_request")
	if isPR {
		issue["html_url"] = r.HTMLURL + "/pull/" + n
		issue["pull_request"] = obj{
			"url": api + "/pulls/" + n, "html_url": r.HTMLURL + "/pull/" + n,
			"diff_url": r.HTMLURL + "/pull/" + n + ".diff", "patch_url": r.HTMLURL + "/pull/" + n + ".patch",
			"merged_at": nil,
		}
	}
	comment := doc["comment"].(obj)
	comment["id"], comment["node_id"], comment["body"] = commentID, nodeID("IssueComment", commentID), body
	comment["url"], comment["issue_url"] = api+"/issues/comments/"+cid, api+"/issues/"+n
	comment["html_url"] = issue["html_url"].(string) + "#issuecomment-" + cid
	comment["author_association"] = "NONE"
	if _, ok := g.repoState(r).roles[strings.ToLower(user)]; ok {
		comment["author_association"] = "COLLABORATOR"
	}
	if reactions, ok := comment["reactions"].(obj); ok {
		reactions["url"] = api + "/issues/comments/" + cid + "/reactions"
	}
	g.setUser(comment["user"].(obj), user, userType)
	g.setUser(doc["sender"].(obj), user, userType)
	g.setRepo(doc["repository"].(obj), r)
	doc["installation"] = obj{"id": r.InstallationID, "node_id": nodeID("Installation", r.InstallationID)}
	return g.finish(doc)
}

// CheckRunPayload is a check_run event (created, completed, rerequested,
// requested_action) of run on r, by user; identifier is the button's for
// requested_action. A run from CheckRuns fits; of a run made up, the ID,
// name and head SHA are what matter (a conclusion makes it completed).
func (g *GitHub) CheckRunPayload(r *Repo, action string, run CheckRun, user, identifier string) []byte {
	name := "check_run/rerequested"
	if action == "requested_action" {
		name = "check_run/requested_action"
	}
	doc := g.template(name)
	retarget(doc, r)
	var headBranch any // the branch whose head the run's commit is, if it is the default one's
	if c, err := readCommit(r.GitDir, r.DefaultBranch); err == nil && c.Hash.String() == run.HeadSHA {
		headBranch = r.DefaultBranch
	}
	if run.StartedAt.IsZero() {
		run.StartedAt = time.Now().UTC().Truncate(time.Second)
	}
	switch {
	case run.Conclusion != "":
		run.Status = "completed"
	case run.Status == "":
		run.Status = "queued"
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	rs := g.repoState(r)
	doc["action"] = action
	cr := doc["check_run"].(obj)
	if err := json.Unmarshal(mustJSON(g.checkRunJSON(rs, &run)), &cr); err != nil {
		g.t.Fatalf("githubtest: %v", err)
	}
	cr["node_id"] = nodeID("CheckRun", run.ID)
	if run.Conclusion == "" {
		cr["conclusion"], cr["completed_at"] = nil, nil
	}
	var pulls []any
	for _, p := range rs.pulls {
		if p.headSHA == run.HeadSHA && p.mergeCommitSHA == "" {
			pulls = append(pulls, obj{
				"url": g.APIURL() + "repos/" + r.FullName + "/pulls/" + strconv.Itoa(p.number), "id": p.id, "number": p.number,
				"head": obj{"ref": "pull-" + strconv.Itoa(p.number), "sha": p.headSHA, "repo": obj{"id": r.ID, "url": g.APIURL() + "repos/" + r.FullName, "name": r.Name}},
				"base": obj{"ref": r.DefaultBranch, "repo": obj{"id": r.ID, "url": g.APIURL() + "repos/" + r.FullName, "name": r.Name}},
			})
		}
	}
	cr["pull_requests"] = append([]any{}, pulls...)
	if suite, ok := cr["check_suite"].(obj); ok {
		id := g.suiteID(rs, run.HeadSHA)
		suite["id"], suite["node_id"], suite["url"] = id, nodeID("CheckSuite", id), g.APIURL()+"repos/"+r.FullName+"/check-suites/"+itoa(id)
		suite["head_sha"], suite["head_branch"], suite["before"], suite["after"] = run.HeadSHA, headBranch, nil, run.HeadSHA
		suite["pull_requests"], suite["app"] = cr["pull_requests"], cr["app"]
	}
	delete(doc, "requested_action")
	if action == "requested_action" {
		doc["requested_action"] = obj{"identifier": identifier}
	}
	if org, ok := doc["organization"].(obj); ok {
		g.setUser(org, r.Owner, "Organization")
		delete(org, "type")
	}
	g.setUser(doc["sender"].(obj), user, "User")
	g.setRepo(doc["repository"].(obj), r)
	doc["installation"] = obj{"id": r.InstallationID, "node_id": nodeID("Installation", r.InstallationID)}
	return g.finish(doc)
}

// forkOwner owns the fork of a pull request from a fork.
const forkOwner = "outside-contributor"

// PullRequestPayload is a pull_request event (opened, synchronize, closed,
// reopened…) of pull request number of r, from headRef at headSHA into
// baseRef. fork puts the head in forkOwner's fork of r. For synchronize,
// before is the base's head (the previous head is not known here).
func (g *GitHub) PullRequestPayload(r *Repo, action string, number int, headSHA, headRef, baseRef string, fork bool) []byte {
	name := "pull_request/opened"
	switch action {
	case "synchronize", "closed":
		name = "pull_request/" + action
	}
	doc := g.template(name)
	retarget(doc, r)
	var baseSHA string
	if c, err := readCommit(r.GitDir, baseRef); err == nil {
		baseSHA = c.Hash.String()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n, api := strconv.Itoa(number), g.APIURL()+"repos/"+r.FullName
	author := developer
	if fork {
		author = forkOwner
	}
	doc["action"], doc["number"] = action, number
	if action == "synchronize" {
		doc["before"], doc["after"] = baseSHA, headSHA
	}
	g.setPeople(doc)
	pr := doc["pull_request"].(obj)
	pr["number"], pr["state"] = number, "open"
	if action == "closed" {
		pr["state"] = "closed"
	}
	pr["url"], pr["html_url"], pr["issue_url"] = api+"/pulls/"+n, r.HTMLURL+"/pull/"+n, api+"/issues/"+n
	pr["diff_url"], pr["patch_url"] = r.HTMLURL+"/pull/"+n+".diff", r.HTMLURL+"/pull/"+n+".patch"
	pr["commits_url"], pr["review_comments_url"] = api+"/pulls/"+n+"/commits", api+"/pulls/"+n+"/comments"
	pr["comments_url"], pr["statuses_url"] = api+"/issues/"+n+"/comments", api+"/statuses/"+headSHA
	pr["_links"] = obj{
		"self": obj{"href": pr["url"]}, "html": obj{"href": pr["html_url"]}, "issue": obj{"href": pr["issue_url"]},
		"comments": obj{"href": pr["comments_url"]}, "review_comments": obj{"href": pr["review_comments_url"]},
		"review_comment": obj{"href": api + "/pulls/comments{/number}"}, "commits": obj{"href": pr["commits_url"]},
		"statuses": obj{"href": pr["statuses_url"]},
	}
	g.setUser(pr["user"].(obj), author, "User")

	head, base := pr["head"].(obj), pr["base"].(obj)
	base["ref"], base["label"] = baseRef, r.Owner+":"+baseRef
	if baseSHA != "" {
		base["sha"] = baseSHA
	}
	g.setUser(base["user"].(obj), r.Owner, "Organization")
	g.setRepo(base["repo"].(obj), r)
	head["ref"], head["sha"], head["label"] = headRef, headSHA, r.Owner+":"+headRef
	g.setUser(head["user"].(obj), r.Owner, "Organization")
	g.setRepo(head["repo"].(obj), r)
	if fork {
		fr := &Repo{
			FullName: forkOwner + "/" + r.Name, Owner: forkOwner, Name: r.Name, DefaultBranch: r.DefaultBranch,
			CloneURL: g.srv.URL + "/git/" + forkOwner + "/" + r.Name + ".git", HTMLURL: g.srv.URL + "/" + forkOwner + "/" + r.Name,
			ID: g.stableID("fork:" + strings.ToLower(r.FullName)),
		}
		head["label"] = forkOwner + ":" + headRef
		g.setUser(head["user"].(obj), forkOwner, "User")
		g.setRepo(head["repo"].(obj), fr)
		head["repo"].(obj)["fork"] = true
		g.setUser(head["repo"].(obj)["owner"].(obj), forkOwner, "User")
	}
	g.setUser(doc["sender"].(obj), author, "User")
	g.setRepo(doc["repository"].(obj), r)
	doc["installation"] = obj{"id": r.InstallationID, "node_id": nodeID("Installation", r.InstallationID)}
	return g.finish(doc)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
