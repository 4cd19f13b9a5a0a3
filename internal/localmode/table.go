package localmode

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/pvnbot/pvnbot/internal/store"
)

// WriteTable prints one line per target, in aligned columns, for people who
// never saw pvnbot: where each service stands in each release channel, at
// which commit, when fetch and apply last ran and what they said, what
// getInfo reported, and why a target waits or failed. Deleted targets are
// left out.
func WriteTable(w io.Writer, states []store.TargetState) error {
	states = live(states)
	if len(states) == 0 {
		_, err := fmt.Fprintln(w, "No targets yet: no commit with configs has been ingested.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APPLICATION\tSERVICE\tCHANNEL\tSTATUS\tCOMMIT\tLAST FETCH\tLAST APPLY\tINFO\tMESSAGE")
	for _, st := range states {
		k := st.Key()
		cells := []string{k.Application, k.Service, k.ReleaseChannel, string(st.Status), short(st.Target.Commit),
			outcome(st.LastFetch), outcome(st.LastApply), orDash(infoText(st.Info)), orDash(oneLine(st.Message))}
		for i, c := range cells {
			cells[i] = escapeControls(c, false)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// Summary counts targets by status, e.g. "4 converged, 2 waiting for manual approval".
func Summary(states []store.TargetState) string {
	counts := map[store.Status]int{}
	for _, st := range live(states) {
		counts[st.Status]++
	}
	statuses := make([]store.Status, 0, len(counts))
	for s := range counts {
		statuses = append(statuses, s)
	}
	sort.Slice(statuses, func(i, j int) bool { return statusRank(statuses[i]) < statusRank(statuses[j]) })
	parts := make([]string, 0, len(statuses))
	for _, s := range statuses {
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], statusWords(s)))
	}
	if len(parts) == 0 {
		return "no targets"
	}
	return strings.Join(parts, ", ")
}

// TargetJSON is one target as `bot status --json` prints it.
type TargetJSON struct {
	Application    string             `json:"application"`
	Service        string             `json:"service"`
	ReleaseChannel string             `json:"releaseChannel"`
	Status         store.Status       `json:"status"`
	Message        string             `json:"message,omitempty"`
	Commit         string             `json:"commit"`
	DesiredVersion string             `json:"desiredVersion"`
	UpdatedAt      time.Time          `json:"updatedAt"`
	LastFetch      *OutcomeJSON       `json:"lastFetch,omitempty"`
	LastApply      *OutcomeJSON       `json:"lastApply,omitempty"`
	Info           []store.InfoOutput `json:"info,omitempty"`
}

// OutcomeJSON is how a job last ended.
type OutcomeJSON struct {
	Commit   string    `json:"commit"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	ExitCode int       `json:"exitCode"`
	Error    string    `json:"error,omitempty"`
}

// WriteJSON prints the targets as a JSON array of TargetJSON.
func WriteJSON(w io.Writer, states []store.TargetState) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(TargetsJSON(states))
}

// TargetsJSON is the live targets as `bot status --json` prints them.
func TargetsJSON(states []store.TargetState) []TargetJSON {
	out := make([]TargetJSON, 0, len(states))
	for _, st := range live(states) {
		k := st.Key()
		out = append(out, TargetJSON{
			Application: k.Application, Service: k.Service, ReleaseChannel: k.ReleaseChannel,
			Status: st.Status, Message: st.Message, Commit: st.Target.Commit,
			DesiredVersion: st.Target.DesiredVersion, UpdatedAt: st.UpdatedAt,
			LastFetch: outcomeJSON(st.LastFetch), LastApply: outcomeJSON(st.LastApply), Info: st.Info,
		})
	}
	return out
}

func outcomeJSON(o store.Outcome) *OutcomeJSON {
	if o.RunID == "" {
		return nil
	}
	return &OutcomeJSON{Commit: o.Commit, Started: o.Started, Finished: o.Finished, ExitCode: o.ExitCode, Error: o.Error}
}

// live drops deleted targets and sorts the rest by application, release
// channel (upstream channels first) and service.
func live(states []store.TargetState) []store.TargetState {
	out := make([]store.TargetState, 0, len(states))
	for _, st := range states {
		if st.Status != store.StatusDeleted {
			out = append(out, st)
		}
	}
	depth := channelDepths(out)
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Key(), out[j].Key()
		if a.Application != b.Application {
			return a.Application < b.Application
		}
		da, db := depth[[2]string{a.Application, a.ReleaseChannel}], depth[[2]string{b.Application, b.ReleaseChannel}]
		if da != db {
			return da < db
		}
		if a.ReleaseChannel != b.ReleaseChannel {
			return a.ReleaseChannel < b.ReleaseChannel
		}
		return a.Service < b.Service
	})
	return out
}

// channelDepths ranks each (application, channel) by how many
// releaseChannelStable steps lead to it: staging 0, production 1.
func channelDepths(states []store.TargetState) map[[2]string]int {
	upstream := map[[2]string][]string{}
	for _, st := range states {
		k := [2]string{st.Target.Application, st.Target.ReleaseChannel}
		for _, p := range st.Target.Preconditions {
			if p.ReleaseChannelStable != "" && !slices.Contains(upstream[k], p.ReleaseChannelStable) {
				upstream[k] = append(upstream[k], p.ReleaseChannelStable)
			}
		}
	}
	depth := map[[2]string]int{}
	var walk func(k [2]string, seen int) int
	walk = func(k [2]string, seen int) int {
		if d, ok := depth[k]; ok {
			return d
		}
		d := 0
		if seen < len(upstream)+1 {
			for _, up := range upstream[k] {
				d = max(d, walk([2]string{k[0], up}, seen+1)+1)
			}
		}
		depth[k] = d
		return d
	}
	for _, st := range states {
		walk([2]string{st.Target.Application, st.Target.ReleaseChannel}, 0)
	}
	return depth
}

// outcome is "exit 0 at 12:00:01", "running since 12:00:01", or "-".
func outcome(o store.Outcome) string {
	switch {
	case o.RunID == "":
		return "-"
	case o.Finished.IsZero():
		return "started " + clockTime(o.Started)
	case o.Error != "" && o.ExitCode < 0:
		return "error at " + clockTime(o.Finished)
	}
	return fmt.Sprintf("exit %d at %s", o.ExitCode, clockTime(o.Finished))
}

func clockTime(t time.Time) string { return t.Local().Format("15:04:05") }

func infoText(info []store.InfoOutput) string {
	parts := make([]string, 0, len(info))
	for _, o := range info {
		parts = append(parts, o.Name+"="+oneLine(o.Text))
	}
	return strings.Join(parts, "; ")
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}

// escapeControls makes what a job printed, or a config named, safe to show
// on a terminal: control characters (C0 and C1, DEL, tabs, and newlines
// unless kept) and invalid UTF-8 are written as Go escapes (\x1b, \u009b),
// so that output cannot move the cursor, clear the screen or retitle the
// window. JSON output is left as it is: its encoding escapes them.
func escapeControls(s string, keepNewlines bool) string {
	clean := utf8.ValidString(s)
	for _, r := range s {
		if needsEscape(r, keepNewlines) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !needsEscape(r, keepNewlines):
			b.WriteString(s[i : i+size])
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

func needsEscape(r rune, keepNewlines bool) bool {
	switch {
	case r == '\n':
		return !keepNewlines
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	}
	return false
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// statusRank orders summaries from done to stuck.
func statusRank(s store.Status) int {
	switch {
	case s.IsConverged():
		return 0
	case s.IsInProgress():
		return 1
	case s.IsWaiting():
		return 2
	case s.IsFailed():
		return 3
	}
	return 4
}

// statusWords is a status as people say it: "waiting for manual approval".
func statusWords(s store.Status) string {
	return strings.ToLower(strings.ReplaceAll(strings.Replace(string(s), "WAITING_", "WAITING_FOR_", 1), "_", " "))
}
