package checks

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-github/v89/github"

	"github.com/pvnbot/pvnbot/internal/config"
)

// check queues the check name of a commit, once: a commit's configs do
// not change. Called without r.mu.
func (r *Reporter) check(name, sha string, o output, annotations []*github.CheckRunAnnotation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := commitKey{name, sha}
	if r.commits[k] != nil {
		return
	}
	r.commits[k] = &commitCheck{name: name, o: o, annotations: annotations, run: checkRun{commit: sha}}
	r.enqueue(task{commit: k})
}

// writeCommitCheck writes a check of a commit: created with the first 50
// annotations, then updated with 50 more at a time (GitHub appends them),
// resuming where a failed write left off.
func (r *Reporter) writeCommitCheck(ctx context.Context, c *commitCheck) error {
	all := c.annotations
	if c.run.id == 0 {
		if !c.run.looked {
			if err := r.find(ctx, &c.run, c.name); err != nil {
				return err
			}
			if c.run.id != 0 {
				return nil // written before a restart
			}
		}
		first := all[:min(len(all), maxAnnotations)]
		if err := r.put(ctx, &c.run, c.name, c.o, first); err != nil {
			return err
		}
		c.annotated = len(first)
	}
	for c.annotated < len(all) {
		batch := all[c.annotated:min(len(all), c.annotated+maxAnnotations)]
		_, _, err := r.opts.API.UpdateCheckRun(ctx, r.opts.Owner, r.opts.Repo, c.run.id, github.UpdateCheckRunOptions{
			Name:   c.name,
			Output: &github.CheckRunOutput{Title: github.Ptr(c.o.title), Summary: github.Ptr(c.o.summary), Annotations: batch},
		})
		if err != nil {
			return fmt.Errorf("annotate check run %q of %s: %w", c.name, short(c.run.commit), err)
		}
		c.annotated += len(batch)
	}
	return nil
}

// configsOutput is failure with the problems listed, or success with the
// warnings.
func configsOutput(problems, warnings config.Errors) output {
	o := output{status: statusCompleted, conclusion: "success"}
	var b strings.Builder
	if len(problems) > 0 {
		o.conclusion = "failure"
		o.title = plural(len(problems), "config problem")
		b.WriteString("The configs of this commit are invalid: nothing of it is deployed, and the previous desired state stays in force.\n\n")
	} else {
		o.title = plural(len(warnings), "config warning")
		b.WriteString("The configs of this commit are deployed, with warnings.\n\n")
	}
	for _, e := range append(append(config.Errors{}, problems...), warnings...) {
		kind := ""
		if e.Severity.IsWarning() {
			kind = "warning: "
		}
		fmt.Fprintf(&b, "- `%s`: %s%s\n", e.Pos, kind, cell(e.Msg))
	}
	o.summary = truncate(b.String())
	return o
}

// annotations puts each problem at its file and line.
func annotations(errs config.Errors) []*github.CheckRunAnnotation {
	out := make([]*github.CheckRunAnnotation, 0, len(errs))
	for _, e := range errs {
		level := "failure"
		if e.Severity.IsWarning() {
			level = "warning"
		}
		line := max(e.Pos.Line, 1)
		a := &github.CheckRunAnnotation{
			Path: github.Ptr(e.Pos.File), StartLine: github.Ptr(line), EndLine: github.Ptr(line),
			AnnotationLevel: github.Ptr(level), Message: github.Ptr(clip(e.Msg, 64<<10)), Title: github.Ptr("pvnbot"),
		}
		if e.Pos.Col > 0 {
			a.StartColumn, a.EndColumn = github.Ptr(e.Pos.Col), github.Ptr(e.Pos.Col)
		}
		out = append(out, a)
	}
	return out
}
