package checks

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
)

// ValidateCheckName is the name of a pull request's check run.
const ValidateCheckName = "pvnbot: validate"

// Plan is what a pull request would change of the desired state once
// merged: its head's targets against those of the deploy branch's head.
type Plan struct {
	Branch, Base string // the deploy branch and the commit compared with
	Changes      desired.Changes
	// Targets are the head's: what the added ones are.
	Targets []desired.Target
}

// ReportValidation shows a pull request's head commit as the check run
// pvnbot: validate: failure with an annotation at each config problem, or
// success with the plan (the targets added, changed, with the rendered
// difference, and removed; which release channels will wait for approval),
// warnings annotated either way.
func (r *Reporter) ReportValidation(sha string, problems, warnings config.Errors, plan Plan) {
	var o output
	if len(problems) > 0 {
		o = configsOutput(problems, warnings)
		o.summary = truncate("Once merged, this commit would deploy nothing: its configs are invalid.\n\n" +
			strings.SplitN(o.summary, "\n\n", 2)[1])
	} else {
		o = planOutput(plan, warnings)
	}
	r.check(ValidateCheckName, sha, o, annotations(append(append(config.Errors{}, problems...), warnings...)))
}

func planOutput(p Plan, warnings config.Errors) output {
	c := p.Changes
	o := output{status: statusCompleted, conclusion: "success"}
	var b strings.Builder
	if c.Empty() {
		o.title = "no target changes"
		fmt.Fprintf(&b, "Merged into `%s`, this pull request changes the desired state of no target (%s unchanged, against `%s`).\n",
			p.Branch, plural(c.Unchanged, "target"), short(p.Base))
	} else {
		var parts []string
		for _, part := range []struct {
			n    int
			word string
		}{{len(c.Changed), "changed"}, {len(c.Added), "added"}, {len(c.Removed), "removed"}} {
			if part.n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", part.n, part.word))
			}
		}
		o.title = strings.Join(parts, ", ")
		fmt.Fprintf(&b, "Merged into `%s`, this pull request changes the desired state of these targets, against `%s` (%s unchanged). Nothing of it runs before it is merged.\n",
			p.Branch, short(p.Base), plural(c.Unchanged, "target"))
	}
	if len(c.Changed) > 0 {
		b.WriteString("\n### Changed\n")
		for _, ch := range c.Changed {
			fmt.Fprintf(&b, "\n**%s**\n\n%s", cell(ch.Key.String()), fence(ch.Detail))
		}
	}
	for _, part := range []struct {
		title string
		keys  []desired.Key
	}{{"Added", c.Added}, {"Removed", c.Removed}} {
		if len(part.keys) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n### %s\n\n", part.title)
		for _, k := range part.keys {
			fmt.Fprintf(&b, "- %s\n", cell(k.String()))
		}
	}
	if gated := approvalChannels(p); len(gated) > 0 {
		b.WriteString("\n### Approval\n\nOnce deployed, these release channels wait for approval (`/approve <channel>` on this pull request):\n\n")
		for _, g := range gated {
			fmt.Fprintf(&b, "- %s\n", g)
		}
	}
	if len(warnings) > 0 {
		fmt.Fprintf(&b, "\n%s: see the annotations.\n", plural(len(warnings), "config warning"))
	}
	o.summary = truncate(b.String())
	return o
}

// approvalChannels lists "application/channel (services)" for the
// release channels whose targets the plan adds or changes and that need
// approval.
func approvalChannels(p Plan) []string {
	c := p.Changes
	services := map[string][]string{}
	note := func(tg *desired.Target) {
		if tg != nil && tg.NeedsApproval() {
			ch := tg.Application + "/" + tg.ReleaseChannel
			services[ch] = append(services[ch], tg.Service)
		}
	}
	for _, ch := range c.Changed {
		note(ch.New)
	}
	for i := range p.Targets {
		if slices.Contains(c.Added, p.Targets[i].Key) {
			note(&p.Targets[i])
		}
	}
	var out []string
	for ch, svcs := range services {
		slices.Sort(svcs)
		out = append(out, fmt.Sprintf("%s (%s)", ch, strings.Join(svcs, ", ")))
	}
	slices.Sort(out)
	return out
}
