package checks

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pvnbot/pvnbot/internal/store"
)

// GitHub's limits on a check run (GITHUB-FACTS.md, SPEC §8).
const (
	maxSummary       = 65535
	maxActionDesc    = 40
	maxAnnotations   = 50
	approveActionID  = "approve"
	statusQueued     = "queued"
	statusInProgress = "in_progress"
	statusCompleted  = "completed"
)

// output is what a check run shows; two equal outputs look the same.
type output struct {
	status, conclusion string
	title, summary     string
	approve            bool // the Approve button
	approvals          int  // shown in summary
}

func (o output) completed() bool { return o.status == statusCompleted }

// channelState sums up the targets of one application's release channel.
type channelState struct {
	app, channel string
	commit       string
	targets      []store.TargetState         // live ones, by service
	tails        map[string]string           // output tail by run ID, of failed jobs
	approvals    map[string][]store.Approval // of the desired states, by service
}

// failing reports whether a target's last job failed, including while it
// tries again after a failed apply: the check run stays failed until the
// target converges, rather than flipping at each attempt.
func failing(st store.TargetState) bool {
	return st.Status.IsFailed() || (st.Attempts > 0 && st.Status.IsInProgress())
}

func inProgress(st store.TargetState) bool {
	return st.Status.IsInProgress() || st.Status == store.StatusWaitingConcurrency
}

// render is the check run of a channel: failure when a target failed, in
// progress while jobs run, action required while a target waits for
// approval, queued while waiting on another channel, success when every
// target converged.
func render(cs channelState) output {
	var failed, running, approval, waiting []string
	for _, st := range cs.targets {
		svc := st.Key().Service
		switch {
		case failing(st):
			failed = append(failed, svc)
		case inProgress(st):
			running = append(running, svc)
		case st.Status == store.StatusWaitingManualApproval:
			approval = append(approval, svc)
		case st.Status == store.StatusWaitingPreconditions:
			waiting = append(waiting, svc)
		}
	}
	o := output{status: statusCompleted}
	switch {
	case len(cs.targets) == 0:
		o.conclusion, o.title = "neutral", "no targets: every service was removed"
	case len(failed) > 0:
		o.conclusion, o.title = "failure", "failed: "+list(failed)
	case len(running) > 0:
		o.status, o.title = statusInProgress, fmt.Sprintf("%s of %s converged; in progress: %s",
			count(len(cs.targets)-len(running)-len(approval)-len(waiting)), plural(len(cs.targets), "target"), list(running))
	case len(approval) > 0:
		o.conclusion, o.title, o.approve = "action_required", "waiting for approval: "+list(approval), true
	case len(waiting) > 0:
		o.status, o.title = statusQueued, "waiting for "+upstreams(cs.targets)
	default:
		o.conclusion, o.title = "success", plural(len(cs.targets), "target")+" converged"
	}
	for _, as := range cs.approvals {
		o.approvals += len(as)
	}
	o.summary = summary(cs, o)
	return o
}

// summary is the Markdown of a channel's check run: a line, the table of
// its targets, and the output of what failed.
func summary(cs channelState, o output) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s/%s** at `%s`: %s.\n\n", cs.app, cs.channel, short(cs.commit), o.title)
	if len(cs.targets) > 0 {
		b.WriteString("| Service | Status | Commit | Last fetch | Last apply | Info | Message |\n|---|---|---|---|---|---|---|\n")
		for _, st := range cs.targets {
			fmt.Fprintf(&b, "| %s | %s %s | `%s` | %s | %s | %s | %s |\n",
				cell(st.Key().Service), mark(st), st.Status, short(st.Target.Commit),
				cell(fetchCell(st.LastFetch)), cell(applyCell(st.LastApply)), infoCell(st.Info), cell(st.Message))
		}
	}
	if o.approve {
		b.WriteString("\nApprove with the **Approve** button above, or comment `/approve " + cs.channel + "` on the pull request.\n")
	}
	if len(cs.approvals) > 0 {
		b.WriteString("\n**Approvals**\n\n")
		for _, st := range cs.targets {
			svc := st.Key().Service
			if len(cs.approvals[svc]) == 0 {
				continue
			}
			var who []string
			for _, a := range cs.approvals[svc] {
				by := "approved by @" + cell(a.Who)
				switch {
				case a.URL != "":
					by += fmt.Sprintf(" ([%s](%s))", cmp.Or(a.Source, "link"), a.URL)
				case a.Source != "":
					by += " (" + a.Source + ")"
				}
				if a.ConsumedBy != "" {
					by += ", used by an apply"
				}
				who = append(who, by)
			}
			fmt.Fprintf(&b, "- %s: %s\n", cell(svc), strings.Join(who, "; "))
		}
	}
	for _, st := range cs.targets {
		if !failing(st) {
			continue
		}
		out := st.LastApply
		what := "apply"
		if st.LastFetch.Finished.After(out.Finished) && st.LastFetch.ExitCode != 0 {
			out, what = st.LastFetch, "fetch"
		}
		fmt.Fprintf(&b, "\n### %s: %s %s\n\n", cell(st.Key().Service), what, ended(out))
		if t := cs.tails[out.RunID]; t != "" {
			b.WriteString(fence(t))
		}
	}
	return truncate(b.String())
}

func fetchCell(o store.Outcome) string {
	if o.RunID == "" {
		return "-"
	}
	if o.Error != "" {
		return "error"
	}
	return fmt.Sprintf("exit %d", o.ExitCode)
}

func applyCell(o store.Outcome) string {
	if o.RunID == "" {
		return "-"
	}
	s := "exit " + fmt.Sprint(o.ExitCode)
	if o.Error != "" {
		s = "error"
	}
	return s + " at " + o.Finished.UTC().Format(time.DateTime) + " UTC"
}

func ended(o store.Outcome) string {
	if o.Error != "" {
		return "failed: " + o.Error
	}
	return fmt.Sprintf("exited %d", o.ExitCode)
}

func infoCell(info []store.InfoOutput) string {
	parts := make([]string, len(info))
	for i, o := range info {
		parts[i] = "**" + cell(o.Name) + "**: " + cell(o.Text)
	}
	return strings.Join(parts, "<br>")
}

func mark(st store.TargetState) string {
	switch {
	case failing(st):
		return "❌"
	case st.Status.IsConverged():
		return "✅"
	case st.Status.IsWaiting():
		return "⏸️"
	}
	return "⏳"
}

// cell makes text safe in a Markdown table cell.
func cell(s string) string {
	s = strings.TrimSpace(s)
	r := strings.NewReplacer("|", `\|`, "\r\n", "<br>", "\n", "<br>", "\r", "<br>", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}

// fence puts text in a code block no line of it can close.
func fence(text string) string {
	ticks := "```"
	for strings.Contains(text, ticks) {
		ticks += "`"
	}
	return ticks + "\n" + strings.TrimRight(text, "\n") + "\n" + ticks + "\n"
}

// truncate keeps a summary within GitHub's limit, saying so.
func truncate(s string) string {
	const note = "\n\n… (truncated: GitHub shows at most 65,535 characters)\n"
	if len([]rune(s)) <= maxSummary {
		return s
	}
	r := []rune(s)
	return string(r[:maxSummary-len([]rune(note))]) + note
}

func upstreams(targets []store.TargetState) string {
	var names []string
	for _, st := range targets {
		for _, p := range st.Target.Preconditions {
			if p.ReleaseChannelStable != "" && !slices.Contains(names, p.ReleaseChannelStable) {
				names = append(names, p.ReleaseChannelStable)
			}
		}
	}
	if len(names) == 0 {
		return "preconditions"
	}
	return "release channel " + strings.Join(names, ", ")
}

func list(names []string) string {
	const most = 5
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:most], ", ") + fmt.Sprintf(" and %d more", len(names)-most)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func count(n int) string { return fmt.Sprint(n) }

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
