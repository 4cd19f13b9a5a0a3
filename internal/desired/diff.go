package desired

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// Changes is how a new desired state differs from an old one.
type Changes struct {
	Added   []Key // in the order of new
	Removed []Key // in the order of old
	Changed []Change
	// Unchanged counts the targets in both whose digest is the same.
	Unchanged int
}

// Change is a target whose digest changed.
type Change struct {
	Key
	Old, New *Target
	// Detail lists what changed, one "field: old → new" per line, e.g.
	// `apply.cmd: ["apply","--id=a"] → ["apply","--id=b"]`. Secret values
	// are never shown: "params.token: (secret changed)".
	Detail string
}

// Empty reports whether nothing was added, removed or changed.
func (c Changes) Empty() bool {
	return len(c.Added) == 0 && len(c.Removed) == 0 && len(c.Changed) == 0
}

// Diff compares two desired states, target by target (matched by Key).
func Diff(old, new []Target) Changes {
	oldByKey := make(map[Key]*Target, len(old))
	for i := range old {
		oldByKey[old[i].Key] = &old[i]
	}
	inNew := make(map[Key]bool, len(new))
	var c Changes
	for i := range new {
		n := &new[i]
		inNew[n.Key] = true
		o, ok := oldByKey[n.Key]
		switch {
		case !ok:
			c.Added = append(c.Added, n.Key)
		case o.Digest == n.Digest:
			c.Unchanged++
		default:
			c.Changed = append(c.Changed, Change{Key: n.Key, Old: o, New: n, Detail: detail(o, n)})
		}
	}
	for i := range old {
		if !inNew[old[i].Key] {
			c.Removed = append(c.Removed, old[i].Key)
		}
	}
	return c
}

// unset stands for a value that is not there.
const unset = "(unset)"

type differ struct{ lines []string }

func (d *differ) add(field, old, new string) {
	if old != new {
		d.lines = append(d.lines, field+": "+old+" → "+new)
	}
}

func detail(o, n *Target) string {
	var d differ
	d.add("runtime", o.Runtime, n.Runtime)
	d.add("connection", o.Connection, n.Connection)
	d.add("applyId", orUnset(o.ApplyID), orUnset(n.ApplyID))
	d.params(o, n)
	d.job("apply", &o.Apply, &n.Apply)
	d.optJob("fetch", o.Fetch, n.Fetch)
	d.optJob("getInfo", o.GetInfo, n.GetInfo)
	d.policy(&o.Policy, &n.Policy)
	d.add("preconditions", preconditionsText(o.Preconditions), preconditionsText(n.Preconditions))
	if len(d.lines) == 0 {
		return "(rendering changed)"
	}
	return strings.Join(d.lines, "\n")
}

func orUnset(s string) string {
	if s == "" {
		return unset
	}
	return s
}

func (d *differ) params(o, n *Target) {
	var names []string
	for name := range o.Params {
		names = append(names, name)
	}
	for name := range n.Params {
		if _, ok := o.Params[name]; !ok {
			names = append(names, name)
		}
	}
	for _, name := range o.SecretParams {
		names = append(names, name)
	}
	for _, name := range n.SecretParams {
		if !slices.Contains(o.SecretParams, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, name := range names {
		ov, oSecret, oOK := paramOf(o, name)
		nv, nSecret, nOK := paramOf(n, name)
		switch {
		case !oSecret && !nSecret:
			d.add("params."+name, present(ov, oOK), present(nv, nOK))
		case ov != nv || oOK != nOK || oSecret != nSecret:
			d.lines = append(d.lines, "params."+name+": (secret changed)")
		}
	}
}

// paramOf gives a parameter's value; a secret's comes from the apply env.
func paramOf(t *Target, name string) (value string, secret, ok bool) {
	if slices.Contains(t.SecretParams, name) {
		v, ok := envValue(t.Apply.Env, ParamEnvName(name))
		return v, true, ok
	}
	v, ok := t.Params[name]
	return v, false, ok
}

func envValue(env []runner.EnvVar, name string) (string, bool) {
	for _, e := range env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func present(v string, ok bool) string {
	if !ok {
		return unset
	}
	return v
}

func (d *differ) optJob(field string, o, n *runner.Spec) {
	switch {
	case o == nil && n == nil:
	case o == nil:
		d.lines = append(d.lines, field+": (none) → added")
	case n == nil:
		d.lines = append(d.lines, field+": removed")
	default:
		d.job(field, o, n)
	}
}

func (d *differ) job(field string, o, n *runner.Spec) {
	d.add(field+".proxyRuntime", o.ProxyRuntime, n.ProxyRuntime)
	d.add(field+".namespace", orUnset(o.Namespace), orUnset(n.Namespace))
	d.add(field+".image", orUnset(o.Image), orUnset(n.Image))
	d.add(field+".entrypoint", quoteList(o.Entrypoint), quoteList(n.Entrypoint))
	d.add(field+".cmd", quoteList(o.Cmd), quoteList(n.Cmd))
	d.add(field+".workingDirectory", orUnset(o.WorkingDirectory), orUnset(n.WorkingDirectory))
	d.add(field+".serviceAccount", orUnset(o.ServiceAccount), orUnset(n.ServiceAccount))
	d.add(field+".ttl", o.TTL.String(), n.TTL.String())
	d.add(field+".timeout", o.Timeout.String(), n.Timeout.String())
	d.env(field+".env", o.Env, n.Env)
	if string(o.Manifest) != string(n.Manifest) {
		d.lines = append(d.lines, field+".manifest:")
		for _, l := range lineDiff(string(o.Manifest), string(n.Manifest)) {
			d.lines = append(d.lines, "  "+l)
		}
	}
}

// env compares the user's variables; the PVN_* ones follow from what is
// compared elsewhere (or from the commit).
func (d *differ) env(field string, o, n []runner.EnvVar) {
	find := func(env []runner.EnvVar, name string) *runner.EnvVar {
		for i := range env {
			if env[i].Name == name {
				return &env[i]
			}
		}
		return nil
	}
	var names []string
	for _, e := range o {
		names = append(names, e.Name)
	}
	for _, e := range n {
		if find(o, e.Name) == nil {
			names = append(names, e.Name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if strings.HasPrefix(name, reservedEnvPrefix) {
			continue
		}
		oe, ne := find(o, name), find(n, name)
		if (oe != nil && oe.Sensitive) || (ne != nil && ne.Sensitive) {
			if envText(oe) != envText(ne) {
				d.lines = append(d.lines, field+"."+name+": (secret changed)")
			}
			continue
		}
		d.add(field+"."+name, envText(oe), envText(ne))
	}
}

func envText(e *runner.EnvVar) string {
	switch {
	case e == nil:
		return unset
	case e.SecretRef != nil:
		return "secret " + e.SecretRef.Name + "/" + e.SecretRef.Key
	default:
		return e.Value
	}
}

func (d *differ) policy(o, n *Policy) {
	dur := time.Duration.String
	d.add("policy.fetchMode", string(o.FetchMode), string(n.FetchMode))
	d.add("policy.fetchPollInterval", dur(o.FetchPollInterval), dur(n.FetchPollInterval))
	d.add("policy.steadyStatePollInterval", dur(o.SteadyStatePollInterval), dur(n.SteadyStatePollInterval))
	d.add("policy.getInfoPollInterval", dur(o.GetInfoPollInterval), dur(n.GetInfoPollInterval))
	d.add("policy.convergenceGracePeriod", dur(o.ConvergenceGracePeriod), dur(n.ConvergenceGracePeriod))
	d.add("policy.maxConcurrency", strconv.Itoa(o.MaxConcurrency), strconv.Itoa(n.MaxConcurrency))
	d.add("policy.retry.baseInterval", dur(o.Retry.BaseInterval), dur(n.Retry.BaseInterval))
	d.add("policy.retry.maxInterval", dur(o.Retry.MaxInterval), dur(n.Retry.MaxInterval))
	d.add("policy.retry.maxAttempts", strconv.Itoa(o.Retry.MaxAttempts), strconv.Itoa(n.Retry.MaxAttempts))
	d.add("policy.retryableExitCodes", fmt.Sprint(o.RetryableExitCodes), fmt.Sprint(n.RetryableExitCodes))
	for _, r := range []struct {
		name string
		o, n config.RetryPolicy
	}{{"fetchRetry", o.FetchRetry, n.FetchRetry}, {"getInfoRetry", o.GetInfoRetry, n.GetInfoRetry}} {
		d.add("policy."+r.name+".baseInterval", dur(r.o.BaseInterval), dur(r.n.BaseInterval))
		d.add("policy."+r.name+".maxInterval", dur(r.o.MaxInterval), dur(r.n.MaxInterval))
		d.add("policy."+r.name+".maxAttempts", strconv.Itoa(r.o.MaxAttempts), strconv.Itoa(r.n.MaxAttempts))
	}
	d.add("policy.requireApprovalBeforeApply", strconv.FormatBool(o.RequireApprovalBeforeApply), strconv.FormatBool(n.RequireApprovalBeforeApply))
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ",") + "]"
}

func preconditionsText(pcs []Precondition) string {
	parts := make([]string, 0, len(pcs))
	for _, pc := range pcs {
		if pc.ReleaseChannelStable != "" {
			parts = append(parts, "releaseChannelStable("+pc.ReleaseChannelStable+")")
		}
		if m := pc.ManualApproval; m != nil {
			parts = append(parts, fmt.Sprintf("manualApproval(%s, minApprovers=%d, everyAction=%t)", m.Name, m.MinApprovers, m.EveryAction))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// maxLineDiffCells bounds the work of lineDiff; beyond it, it only counts.
const maxLineDiffCells = 1 << 18

// lineDiff lists the lines removed ("- ") and added ("+ ") from a to b,
// along a longest common subsequence.
func lineDiff(a, b string) []string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(al)*len(bl) > maxLineDiffCells {
		return []string{fmt.Sprintf("(%d lines → %d lines)", len(al), len(bl))}
	}
	// lcs[i][j]: length of the LCS of al[i:] and bl[j:].
	lcs := make([][]int, len(al)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(bl)+1)
	}
	for i := len(al) - 1; i >= 0; i-- {
		for j := len(bl) - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < len(al) || j < len(bl) {
		switch {
		case i < len(al) && j < len(bl) && al[i] == bl[j]:
			i, j = i+1, j+1
		case i < len(al) && (j == len(bl) || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, fmt.Sprintf("- %d: %s", i+1, al[i]))
			i++
		default:
			out = append(out, fmt.Sprintf("+ %d: %s", j+1, bl[j]))
			j++
		}
	}
	return out
}
