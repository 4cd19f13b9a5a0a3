package githubtest

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-github/v89/github"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func annotations(n int) []*github.CheckRunAnnotation {
	var out []*github.CheckRunAnnotation
	for i := range n {
		out = append(out, &github.CheckRunAnnotation{
			Path: github.Ptr("app.pvn.yaml"), StartLine: github.Ptr(i + 1), EndLine: github.Ptr(i + 1),
			AnnotationLevel: github.Ptr("failure"), Message: github.Ptr("problem " + strconv.Itoa(i)),
		})
	}
	return out
}

var approve = []*github.CheckRunAction{{Label: "Approve", Description: "Apply to production", Identifier: "approve"}}

func TestCheckRunLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, f.inst)
	const name = "pvnbot: app/prod"

	run, resp, err := c.Checks.CreateCheckRun(ctx, "acme", "app", github.CreateCheckRunOptions{
		Name: name, HeadSHA: f.sha, ExternalID: github.Ptr("app/prod"),
	})
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, "queued", run.GetStatus())
	assert.Equal(t, f.g.AppID(), run.GetApp().GetID())
	assert.NotNil(t, run.StartedAt)
	assert.Nil(t, run.Conclusion)

	_, _, err = c.Checks.UpdateCheckRun(ctx, "acme", "app", run.GetID(), github.UpdateCheckRunOptions{
		Name: name, Status: github.Ptr("in_progress"),
		Output: &github.CheckRunOutput{Title: github.Ptr("Applying"), Summary: github.Ptr("1 target"), Annotations: annotations(50)},
	})
	require.NoError(t, err)
	got, _, err := c.Checks.UpdateCheckRun(ctx, "acme", "app", run.GetID(), github.UpdateCheckRunOptions{
		Name: name, Conclusion: github.Ptr("action_required"), Actions: approve,
		Output: &github.CheckRunOutput{Title: github.Ptr("Waiting"), Summary: github.Ptr("approve"), Text: github.Ptr("details"), Annotations: annotations(10)},
	})
	require.NoError(t, err)
	assert.Equal(t, "completed", got.GetStatus(), "a conclusion completes the run")
	assert.Equal(t, "action_required", got.GetConclusion())
	assert.NotNil(t, got.CompletedAt)
	assert.Equal(t, 60, got.GetOutput().GetAnnotationsCount(), "annotations append across updates")

	read, _, err := c.Checks.GetCheckRun(ctx, "acme", "app", run.GetID())
	require.NoError(t, err)
	assert.Equal(t, got, read)
	list, _, err := c.Checks.ListCheckRunAnnotations(ctx, "acme", "app", run.GetID(), &github.ListOptions{PerPage: 100})
	require.NoError(t, err)
	assert.Len(t, list, 60)
	_, _, err = c.Checks.GetCheckRun(ctx, "acme", "app", 1)
	assertStatus(t, err, http.StatusNotFound)

	runs := f.g.CheckRuns(f.repo)
	require.Len(t, runs, 1)
	assert.Equal(t, CheckRun{
		ID: run.GetID(), Name: name, HeadSHA: f.sha, ExternalID: "app/prod",
		Status: "completed", Conclusion: "action_required", Title: "Waiting", Summary: "approve", Text: "details",
		Annotations: runs[0].Annotations, Actions: []github.CheckRunAction{*approve[0]},
		StartedAt: runs[0].StartedAt, CompletedAt: runs[0].CompletedAt,
	}, runs[0])
	assert.Len(t, runs[0].Annotations, 60)
	assert.Equal(t, []CheckRunWrite{
		{Method: "POST", ID: run.GetID(), Name: name},
		{Method: "PATCH", ID: run.GetID(), Name: name, Status: "in_progress", Title: "Applying", Summary: "1 target", Annotations: 50},
		{Method: "PATCH", ID: run.GetID(), Name: name, Conclusion: "action_required", Title: "Waiting", Summary: "approve", Annotations: 10, Actions: []github.CheckRunAction{*approve[0]}},
	}, f.g.CheckRunWrites(f.repo))

	// Completed is final: neither its status nor its conclusion changes
	// again (its output may).
	_, _, err = c.Checks.UpdateCheckRun(ctx, "acme", "app", run.GetID(), github.UpdateCheckRunOptions{Name: name, Status: github.Ptr("in_progress")})
	assertStatus(t, err, http.StatusUnprocessableEntity)
	_, _, err = c.Checks.UpdateCheckRun(ctx, "acme", "app", run.GetID(), github.UpdateCheckRunOptions{Name: name, Conclusion: github.Ptr("success")})
	assertStatus(t, err, http.StatusUnprocessableEntity)
	got, _, err = c.Checks.UpdateCheckRun(ctx, "acme", "app", run.GetID(), github.UpdateCheckRunOptions{
		Name: name, Output: &github.CheckRunOutput{Title: github.Ptr("Waiting"), Summary: github.Ptr("approve, please")},
	})
	require.NoError(t, err)
	assert.Equal(t, "action_required", got.GetConclusion())
}

func TestCheckRunLimits(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, f.inst)
	run, _, err := c.Checks.CreateCheckRun(ctx, "acme", "app", github.CreateCheckRunOptions{Name: "x", HeadSHA: f.sha})
	require.NoError(t, err)
	output := func(summary, text string, n int) *github.CheckRunOutput {
		return &github.CheckRunOutput{Title: github.Ptr("t"), Summary: &summary, Text: &text, Annotations: annotations(n)}
	}
	action := func(label, description, identifier string) []*github.CheckRunAction {
		return []*github.CheckRunAction{{Label: label, Description: description, Identifier: identifier}}
	}
	long := strings.Repeat("é", 65535) // characters, not bytes
	twoLines := annotations(1)
	twoLines[0].EndLine, twoLines[0].StartColumn = github.Ptr(2), github.Ptr(1)

	for name, tc := range map[string]struct {
		update github.UpdateCheckRunOptions
		refuse string // in the 422's message; empty: accepted
	}{
		"at every limit":             {github.UpdateCheckRunOptions{Name: "x", Output: output(long, long, 50), Actions: append(append(action(strings.Repeat("l", 20), strings.Repeat("d", 40), strings.Repeat("i", 20)), approve...), approve...)}, ""},
		"51 annotations":             {github.UpdateCheckRunOptions{Name: "x", Output: output("s", "", 51)}, "Only 50 annotations"},
		"summary too long":           {github.UpdateCheckRunOptions{Name: "x", Output: output(long+"x", "", 0)}, "output.summary"},
		"text too long":              {github.UpdateCheckRunOptions{Name: "x", Output: output("s", long+"x", 0)}, "output.text"},
		"4 actions":                  {github.UpdateCheckRunOptions{Name: "x", Actions: append(append(append(approve, approve...), approve...), approve...)}, "Only 3 actions"},
		"label too long":             {github.UpdateCheckRunOptions{Name: "x", Actions: action(strings.Repeat("l", 21), "d", "i")}, "label"},
		"description too long":       {github.UpdateCheckRunOptions{Name: "x", Actions: action("l", strings.Repeat("d", 41), "i")}, "description"},
		"identifier too long":        {github.UpdateCheckRunOptions{Name: "x", Actions: action("l", "d", strings.Repeat("i", 21))}, "identifier"},
		"no name":                    {github.UpdateCheckRunOptions{Status: github.Ptr("in_progress")}, `"name"`},
		"completed, no conclusion":   {github.UpdateCheckRunOptions{Name: "x", Status: github.Ptr("completed")}, "conclusion"},
		"unknown status":             {github.UpdateCheckRunOptions{Name: "x", Status: github.Ptr("done")}, "status"},
		"stale, set by GitHub alone": {github.UpdateCheckRunOptions{Name: "x", Conclusion: github.Ptr("stale")}, "conclusion"},
		"output without a title":     {github.UpdateCheckRunOptions{Name: "x", Output: &github.CheckRunOutput{Summary: github.Ptr("s")}}, "output.title"},
		"unknown annotation level":   {github.UpdateCheckRunOptions{Name: "x", Output: &github.CheckRunOutput{Title: github.Ptr("t"), Summary: github.Ptr("s"), Annotations: []*github.CheckRunAnnotation{{Path: github.Ptr("a"), StartLine: github.Ptr(1), EndLine: github.Ptr(1), AnnotationLevel: github.Ptr("error"), Message: github.Ptr("m")}}}}, "annotation_level"},
		"columns over two lines":     {github.UpdateCheckRunOptions{Name: "x", Output: &github.CheckRunOutput{Title: github.Ptr("t"), Summary: github.Ptr("s"), Annotations: twoLines}}, "start_column"},
	} {
		t.Run(name, func(t *testing.T) {
			writes := len(f.g.CheckRunWrites(f.repo))
			_, _, err := c.Checks.UpdateCheckRun(ctx, "acme", "app", run.GetID(), tc.update)
			if tc.refuse == "" {
				require.NoError(t, err)
				assert.Len(t, f.g.CheckRunWrites(f.repo), writes+1)
				return
			}
			er := assertStatus(t, err, http.StatusUnprocessableEntity)
			assert.Contains(t, er.Message, tc.refuse)
			assert.Len(t, f.g.CheckRunWrites(f.repo), writes, "a refused write is not recorded")
		})
	}

	_, _, err = c.Checks.CreateCheckRun(ctx, "acme", "app", github.CreateCheckRunOptions{Name: "x", HeadSHA: strings.Repeat("a", 40)})
	er := assertStatus(t, err, http.StatusUnprocessableEntity)
	assert.Equal(t, "No commit found for SHA: "+strings.Repeat("a", 40), er.Message)
	_, _, err = c.Checks.CreateCheckRun(ctx, "acme", "app", github.CreateCheckRunOptions{Name: "x"})
	assertStatus(t, err, http.StatusUnprocessableEntity)
	_, _, err = c.Checks.UpdateCheckRun(ctx, "acme", "app", 1, github.UpdateCheckRunOptions{Name: "x"})
	assertStatus(t, err, http.StatusNotFound)
}

func TestListCheckRunsForRef(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.client(t, f.inst)
	create := func(name string, conclusion *string) int64 {
		run, _, err := c.Checks.CreateCheckRun(ctx, "acme", "app", github.CreateCheckRunOptions{Name: name, HeadSHA: f.sha, Conclusion: conclusion})
		require.NoError(t, err)
		return run.GetID()
	}
	a1 := create("a", nil)
	b := create("b", github.Ptr("success"))
	a2 := create("a", nil) // re-run: a newer run of the same name

	ids := func(ref string, opts *github.ListCheckRunsOptions) []int64 {
		list, _, err := c.Checks.ListCheckRunsForRef(ctx, "acme", "app", ref, opts)
		require.NoError(t, err)
		var out []int64
		for _, run := range list.CheckRuns {
			out = append(out, run.GetID())
		}
		assert.Equal(t, len(out), list.GetTotal())
		return out
	}
	assert.Equal(t, []int64{a2, b}, ids(f.sha, nil), "latest by default, newest first")
	assert.Equal(t, []int64{a2, b, a1}, ids(f.sha, &github.ListCheckRunsOptions{Filter: github.Ptr("all")}))
	assert.Equal(t, []int64{a2, a1}, ids(f.sha, &github.ListCheckRunsOptions{CheckName: github.Ptr("a"), Filter: github.Ptr("all")}))
	assert.Equal(t, []int64{b}, ids(f.sha, &github.ListCheckRunsOptions{Status: github.Ptr("completed")}))
	assert.Equal(t, []int64{a2, b}, ids(f.sha, &github.ListCheckRunsOptions{AppID: github.Ptr(f.g.AppID())}))
	assert.Empty(t, ids(f.sha, &github.ListCheckRunsOptions{AppID: github.Ptr(int64(15368))}))
	assert.Equal(t, []int64{a2, b}, ids("main", nil), "a branch names its head")
	assert.Equal(t, []int64{a2, b}, ids("refs/heads/main", nil))

	f.git.Write("new", "x")
	assert.Empty(t, ids(f.git.Commit("second"), nil), "another commit has none")

	list, resp, err := c.Checks.ListCheckRunsForRef(ctx, "acme", "app", f.sha, &github.ListCheckRunsOptions{ListOptions: github.ListOptions{PerPage: 1}})
	require.NoError(t, err)
	assert.Equal(t, 2, list.GetTotal())
	assert.Len(t, list.CheckRuns, 1)
	assert.Equal(t, 2, resp.NextPage)

	_, _, err = c.Checks.ListCheckRunsForRef(ctx, "acme", "app", "nope", nil)
	assertStatus(t, err, http.StatusUnprocessableEntity)
}
