package githubtest

import (
	"cmp"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/go-github/v89/github"
)

// CheckRun is the state of a check run the bot created.
type CheckRun struct {
	ID                                    int64
	Name, HeadSHA, ExternalID, DetailsURL string
	// Status is queued, in_progress or completed; Conclusion is set once
	// completed.
	Status, Conclusion   string
	Title, Summary, Text string
	// Annotations accumulate over the run's updates, as on GitHub.
	Annotations []github.CheckRunAnnotation
	// Actions are the buttons of the last write that gave any.
	Actions                []github.CheckRunAction
	StartedAt, CompletedAt time.Time
}

// CheckRunWrite is one create (POST) or update (PATCH) of a check run that
// GitHub accepted, with the fields as the request carried them (empty
// when the request left them out).
type CheckRunWrite struct {
	Method                                   string // POST or PATCH
	ID                                       int64
	Name, Status, Conclusion, Title, Summary string
	// Annotations is how many annotations the request added.
	Annotations int
	Actions     []github.CheckRunAction
}

// GitHub's limits on check runs.
const (
	maxAnnotations = 50 // per request
	maxOutputChars = 65535
	maxActions     = 3
	maxLabel       = 20
	maxDescription = 40
	maxIdentifier  = 20
)

// checkRunBody is the body of a create or an update. Pointers tell an
// absent field from an empty one.
type checkRunBody struct {
	Name        *string                  `json:"name"`
	HeadSHA     *string                  `json:"head_sha"`
	DetailsURL  *string                  `json:"details_url"`
	ExternalID  *string                  `json:"external_id"`
	Status      *string                  `json:"status"`
	Conclusion  *string                  `json:"conclusion"`
	StartedAt   *github.Timestamp        `json:"started_at"`
	CompletedAt *github.Timestamp        `json:"completed_at"`
	Output      *github.CheckRunOutput   `json:"output"`
	Actions     []*github.CheckRunAction `json:"actions"`
}

var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

func (g *GitHub) createCheckRun(w http.ResponseWriter, r *http.Request, c caller) {
	rs, repo := g.repoFor(w, r, c)
	if rs == nil {
		return
	}
	var b checkRunBody
	if !decode(w, r, &b) || !validCheckRun(w, &b) {
		return
	}
	if b.HeadSHA == nil || *b.HeadSHA == "" {
		invalid(w, "%q wasn't supplied.", "head_sha")
		return
	}
	commit, err := readCommit(repo.GitDir, *b.HeadSHA)
	if err != nil || !fullSHA.MatchString(*b.HeadSHA) {
		writeError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+*b.HeadSHA)
		return
	}
	run := &CheckRun{HeadSHA: commit.Hash.String(), Status: "queued", StartedAt: time.Now().UTC().Truncate(time.Second)}
	g.mu.Lock()
	run.ID = g.newID()
	apply(run, &b)
	rs.runs = append(rs.runs, run)
	rs.writes = append(rs.writes, writeOf(http.MethodPost, run.ID, &b))
	v := g.checkRunJSON(rs, run)
	g.mu.Unlock()
	writeJSON(w, http.StatusCreated, v)
}

func (g *GitHub) updateCheckRun(w http.ResponseWriter, r *http.Request, c caller) {
	rs, _ := g.repoFor(w, r, c)
	if rs == nil {
		return
	}
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var b checkRunBody
	if !decode(w, r, &b) || !validCheckRun(w, &b) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	run := findRun(rs, id)
	if run == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	if run.Status == "completed" && (b.Status != nil && *b.Status != "completed" || b.Conclusion != nil && *b.Conclusion != run.Conclusion) {
		// Once completed, a check run's status and conclusion are final:
		// a new state needs a new check run.
		invalid(w, "Check run %d is completed: its status and conclusion can no longer change.", run.ID)
		return
	}
	apply(run, &b)
	rs.writes = append(rs.writes, writeOf(http.MethodPatch, run.ID, &b))
	writeJSON(w, http.StatusOK, g.checkRunJSON(rs, run))
}

// validCheckRun answers 422 for what GitHub refuses in a create or an
// update. go-github always sends a name, so an empty one is refused too.
func validCheckRun(w http.ResponseWriter, b *checkRunBody) bool {
	if b.Name == nil || *b.Name == "" {
		invalid(w, "%q wasn't supplied.", "name")
		return false
	}
	if s := b.Status; s != nil && *s != "queued" && *s != "in_progress" && *s != "completed" {
		invalid(w, "%q is not a member of [queued, in_progress, completed] for \"status\".", *s)
		return false
	}
	if cl := b.Conclusion; cl != nil && !slices.Contains([]string{"action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out"}, *cl) {
		invalid(w, "%q is not a valid conclusion.", *cl)
		return false
	}
	if b.Status != nil && *b.Status == "completed" && b.Conclusion == nil {
		invalid(w, "%q is required when status is completed.", "conclusion")
		return false
	}
	if o := b.Output; o != nil {
		switch {
		case o.Title == nil:
			invalid(w, "%q wasn't supplied.", "output.title")
			return false
		case o.Summary == nil:
			invalid(w, "%q wasn't supplied.", "output.summary")
			return false
		case utf8.RuneCountInString(o.GetSummary()) > maxOutputChars:
			invalid(w, "Only %d characters are allowed in %q; %d were supplied.", maxOutputChars, "output.summary", utf8.RuneCountInString(o.GetSummary()))
			return false
		case utf8.RuneCountInString(o.GetText()) > maxOutputChars:
			invalid(w, "Only %d characters are allowed in %q; %d were supplied.", maxOutputChars, "output.text", utf8.RuneCountInString(o.GetText()))
			return false
		case len(o.Annotations) > maxAnnotations:
			invalid(w, "Only %d annotations are allowed per request; %d were supplied.", maxAnnotations, len(o.Annotations))
			return false
		}
		for i, a := range o.Annotations {
			if msg := annotationProblem(a); msg != "" {
				invalid(w, "output.annotations[%d]: %s", i, msg)
				return false
			}
		}
	}
	if len(b.Actions) > maxActions {
		invalid(w, "Only %d actions are allowed; %d were supplied.", maxActions, len(b.Actions))
		return false
	}
	for i, a := range b.Actions {
		for _, f := range []struct {
			name, value string
			max         int
		}{{"label", a.Label, maxLabel}, {"description", a.Description, maxDescription}, {"identifier", a.Identifier, maxIdentifier}} {
			n := utf8.RuneCountInString(f.value)
			if n == 0 || n > f.max {
				invalid(w, "actions[%d].%s must be 1 to %d characters long; it is %d.", i, f.name, f.max, n)
				return false
			}
		}
	}
	return true
}

func annotationProblem(a *github.CheckRunAnnotation) string {
	switch {
	case a == nil:
		return "is null"
	case a.GetPath() == "" || a.StartLine == nil || a.EndLine == nil || a.AnnotationLevel == nil || a.GetMessage() == "":
		return "path, start_line, end_line, annotation_level and message are required"
	case !slices.Contains([]string{"notice", "warning", "failure"}, a.GetAnnotationLevel()):
		return strconv.Quote(a.GetAnnotationLevel()) + ` is not a member of [notice, warning, failure] for "annotation_level"`
	case a.GetEndLine() < a.GetStartLine():
		return "end_line is before start_line"
	case (a.StartColumn != nil || a.EndColumn != nil) && a.GetStartLine() != a.GetEndLine():
		return "start_column and end_column are only allowed when start_line equals end_line"
	}
	return ""
}

// apply changes a run as GitHub does for a create or an update: a
// conclusion completes it, annotations are appended, actions replaced.
func apply(run *CheckRun, b *checkRunBody) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&run.Name, b.Name)
	set(&run.DetailsURL, b.DetailsURL)
	set(&run.ExternalID, b.ExternalID)
	if b.StartedAt != nil {
		run.StartedAt = b.StartedAt.Time
	}
	if b.Status != nil {
		run.Status = *b.Status
		if run.Status != "completed" {
			run.Conclusion, run.CompletedAt = "", time.Time{}
		}
	}
	if b.Conclusion != nil {
		run.Status, run.Conclusion = "completed", *b.Conclusion
	}
	if run.Status == "completed" {
		switch {
		case b.CompletedAt != nil:
			run.CompletedAt = b.CompletedAt.Time
		case run.CompletedAt.IsZero():
			run.CompletedAt = time.Now().UTC().Truncate(time.Second)
		}
	}
	if o := b.Output; o != nil {
		run.Title, run.Summary = o.GetTitle(), o.GetSummary()
		set(&run.Text, o.Text)
		for _, a := range o.Annotations {
			run.Annotations = append(run.Annotations, *a)
		}
	}
	if b.Actions != nil {
		run.Actions = nil
		for _, a := range b.Actions {
			run.Actions = append(run.Actions, *a)
		}
	}
}

func writeOf(method string, id int64, b *checkRunBody) CheckRunWrite {
	w := CheckRunWrite{Method: method, ID: id}
	get := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	w.Name, w.Status, w.Conclusion = get(b.Name), get(b.Status), get(b.Conclusion)
	if o := b.Output; o != nil {
		w.Title, w.Summary, w.Annotations = o.GetTitle(), o.GetSummary(), len(o.Annotations)
	}
	for _, a := range b.Actions {
		w.Actions = append(w.Actions, *a)
	}
	return w
}

func findRun(rs *repoState, id int64) *CheckRun {
	for _, run := range rs.runs {
		if run.ID == id {
			return run
		}
	}
	return nil
}

func (g *GitHub) getCheckRun(w http.ResponseWriter, r *http.Request, c caller) {
	rs, _ := g.repoFor(w, r, c)
	if rs == nil {
		return
	}
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	run := findRun(rs, id)
	if run == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, g.checkRunJSON(rs, run))
}

func (g *GitHub) listAnnotations(w http.ResponseWriter, r *http.Request, c caller) {
	rs, _ := g.repoFor(w, r, c)
	if rs == nil {
		return
	}
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	g.mu.Lock()
	run := findRun(rs, id)
	var all []github.CheckRunAnnotation
	if run != nil {
		all = slices.Clone(run.Annotations)
	}
	g.mu.Unlock()
	if run == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	from, to := pageOf(w, r, len(all))
	writeJSON(w, http.StatusOK, append([]github.CheckRunAnnotation{}, all[from:to]...))
}

// listCheckRuns answers GET .../commits/{ref}/check-runs with GitHub's
// filters: check_name, status, app_id and filter (latest, the default,
// keeps the newest run of each name; all keeps every one). Newest first.
func (g *GitHub) listCheckRuns(w http.ResponseWriter, r *http.Request, rs *repoState, repo *Repo, ref string) {
	sha := ref
	if !fullSHA.MatchString(ref) {
		commit, err := readCommit(repo.GitDir, ref)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+ref)
			return
		}
		sha = commit.Hash.String()
	}
	q := r.URL.Query()
	filter := cmp.Or(q.Get("filter"), "latest")
	if filter != "latest" && filter != "all" {
		invalid(w, "%q is not a member of [latest, all] for \"filter\".", filter)
		return
	}
	g.mu.Lock()
	var all []*github.CheckRun
	seen := map[string]bool{}
	for _, run := range slices.Backward(rs.runs) {
		switch {
		case run.HeadSHA != sha,
			q.Has("check_name") && run.Name != q.Get("check_name"),
			q.Has("status") && run.Status != q.Get("status"),
			q.Has("app_id") && q.Get("app_id") != strconv.Itoa(appID),
			filter == "latest" && seen[run.Name]:
			continue
		}
		seen[run.Name] = true
		all = append(all, g.checkRunJSON(rs, run))
	}
	g.mu.Unlock()
	from, to := pageOf(w, r, len(all))
	writeJSON(w, http.StatusOK, github.ListCheckRunsResults{Total: github.Ptr(len(all)), CheckRuns: append([]*github.CheckRun{}, all[from:to]...)})
}

// checkRunJSON is a check run as the REST API shows it. Callers hold g.mu.
func (g *GitHub) checkRunJSON(rs *repoState, run *CheckRun) *github.CheckRun {
	base := g.APIURL() + "repos/" + rs.repo.FullName + "/check-runs/" + itoa(run.ID)
	v := &github.CheckRun{
		ID:         github.Ptr(run.ID),
		Name:       github.Ptr(run.Name),
		HeadSHA:    github.Ptr(run.HeadSHA),
		ExternalID: github.Ptr(run.ExternalID),
		URL:        github.Ptr(base),
		HTMLURL:    github.Ptr(rs.repo.HTMLURL + "/runs/" + itoa(run.ID)),
		DetailsURL: github.Ptr(cmp.Or(run.DetailsURL, g.app().GetHTMLURL())),
		Status:     github.Ptr(run.Status),
		StartedAt:  &github.Timestamp{Time: run.StartedAt},
		Output: &github.CheckRunOutput{
			Title:            github.Ptr(run.Title),
			Summary:          github.Ptr(run.Summary),
			Text:             github.Ptr(run.Text),
			AnnotationsCount: github.Ptr(len(run.Annotations)),
			AnnotationsURL:   github.Ptr(base + "/annotations"),
		},
		CheckSuite:   &github.CheckSuite{ID: github.Ptr(g.suiteID(rs, run.HeadSHA))},
		App:          g.app(),
		PullRequests: []*github.PullRequest{},
	}
	if run.Conclusion != "" {
		v.Conclusion = github.Ptr(run.Conclusion)
		v.CompletedAt = &github.Timestamp{Time: run.CompletedAt}
	}
	for _, p := range rs.pulls {
		if p.headSHA == run.HeadSHA && p.mergeCommitSHA == "" {
			v.PullRequests = append(v.PullRequests, g.pullJSON(rs.repo, p))
		}
	}
	return v
}

// suiteID is the App's check suite for a commit. Callers hold g.mu.
func (g *GitHub) suiteID(rs *repoState, sha string) int64 {
	if rs.suites == nil {
		rs.suites = map[string]int64{}
	}
	if _, ok := rs.suites[sha]; !ok {
		rs.suites[sha] = g.newID()
	}
	return rs.suites[sha]
}

// CheckRuns is the current state of each check run the bot created on r,
// in creation order.
func (g *GitHub) CheckRuns(r *Repo) []CheckRun {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []CheckRun
	for _, run := range g.repoState(r).runs {
		c := *run
		c.Annotations, c.Actions = slices.Clone(run.Annotations), slices.Clone(run.Actions)
		out = append(out, c)
	}
	return out
}

// CheckRunWrites is every create and update of a check run on r that GitHub
// accepted, in order.
func (g *GitHub) CheckRunWrites(r *Repo) []CheckRunWrite {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.repoState(r).writes)
}
