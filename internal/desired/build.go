package desired

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// Options are what Build needs from outside the repository.
type Options struct {
	// Registries maps the name of a linked container registry to its URL
	// (e.g. "ghcr.io/acme"; a leading http:// or https:// is dropped).
	Registries map[string]string
	// Secrets gives the values of secret parameters. When nil, any secret
	// parameter that is given a value is an error.
	Secrets SecretSource

	// commitLimit replaces the limits of one commit, for tests.
	commitLimit *budget
}

// SecretSource gives the values of secret parameters.
type SecretSource interface {
	// Lookup returns the value stored under key, at version (empty: the
	// latest). The error must not contain the value.
	Lookup(key, version string) (string, error)
}

// SecretFunc adapts a function to SecretSource.
type SecretFunc func(key, version string) (string, error)

// Lookup calls f.
func (f SecretFunc) Lookup(key, version string) (string, error) { return f(key, version) }

// ParamEnvPrefix starts the name of the variable that gives a parameter to
// a job: PVN_PARAM_ then the parameter's name with '-' replaced by '_' (case
// is kept: changeId gives PVN_PARAM_changeId).
const ParamEnvPrefix = "PVN_PARAM_"

// ParamEnvName is the variable that carries parameter name to jobs.
func ParamEnvName(name string) string {
	return ParamEnvPrefix + strings.ReplaceAll(name, "-", "_")
}

// reservedEnvPrefix is kept for the variables pvnbot sets itself.
const reservedEnvPrefix = "PVN_"

// Build works out the desired state of every target of set at commit: for
// each service and each release channel of its application, one Target.
//
// Parameter values, from weakest to strongest: the runtime parameter's
// default; the service's customRuntime.parameterValues; the service's
// perReleaseChannel parameterValues for the channel. String values given by
// the service are templates rendered with the service's own parameters
// (their defaults) and the builtins; int values are taken as written; secret
// values name a key looked up in opts.Secrets. Then the runtime's templates
// (taskConfig.program entrypoint, cmd, env values, workingDirectory, image,
// imageTag; job env values; kubernetesConfig manifests; applyId) are rendered
// with the runtime's parameters as {{.Params.NAME}} and {{.Builtins.X}}
// (Service.Name, Application.Name, ReleaseChannel.Name, Runtime.Name, Commit).
// Unknown keys are errors, never empty strings.
//
// Secret parameters reach jobs only through their env: as PVN_PARAM_<NAME>,
// or through a program or job env value that refers to them; such variables
// are marked Sensitive. A secret referred to anywhere else (cmd, image,
// manifest, applyId...) is an error, since those are shown in plans and
// check runs. Secret values are left out of Target.Params and of every
// error message.
//
// Digest rule: the digest covers everything rendered, the policy and the
// preconditions, but not what follows from the commit alone, so that a push
// that renders a target the same way keeps its digest. Left out are
// Target.Commit, Spec.Commit, DesiredVersion (it is ApplyID, which is
// covered, or the commit) and every PVN_* variable (each follows from the
// key, the runtime, the parameters, ApplyID or the commit, all covered but
// the commit). A template that uses {{.Builtins.Commit}} puts the commit in
// what it renders, so that target's digest changes on every commit, as it
// should: its jobs changed. Secret values enter the digest hashed.
//
// Targets are ordered by application, service, then the channels in the
// order the application lists them. On any problem Build returns no targets
// and a config.Errors holding every problem at the file:line:col it comes
// from, each message starting with the target: a partial list would read as
// removed targets.
func Build(set *config.Set, commit string, opts Options) ([]Target, error) {
	if set == nil {
		return nil, nil
	}
	b := newBuilder(set, commit, opts)
	services := slices.Clone(set.Services)
	slices.SortStableFunc(services, func(a, c *config.Service) int {
		return cmp.Or(cmp.Compare(a.Application, c.Application), cmp.Compare(a.Name, c.Name))
	})
	n := 0
	for _, svc := range services {
		if app := b.apps[svc.Application]; app != nil {
			n += len(app.ReleaseChannels)
		}
	}
	targets := make([]Target, 0, n)
	var errs config.Errors
	for _, svc := range services {
		app := b.apps[svc.Application]
		if app == nil {
			errs = append(errs, &config.Error{Pos: svc.Pos, Msg: fmt.Sprintf("service %s: unknown application %q", svc.Name, svc.Application)})
			continue
		}
		for _, o := range svc.PerReleaseChannel {
			if !slices.ContainsFunc(app.ReleaseChannels, func(ch config.ReleaseChannel) bool { return ch.Name == o.ReleaseChannel }) {
				errs = append(errs, &config.Error{Pos: o.Pos, Msg: fmt.Sprintf("service %s: perReleaseChannel: application %s has no release channel %q",
					svc.Name, app.Name, o.ReleaseChannel)})
			}
		}
		for i := range app.ReleaseChannels {
			t, problems := b.target(svc, app, &app.ReleaseChannels[i])
			if len(problems) > 0 {
				errs = append(errs, problems...)
				continue
			}
			targets = append(targets, t)
		}
		if b.tmpl.commit.exhausted() {
			// Every field and target after would be refused alike: say it
			// once.
			errs = onceCommitLimit(errs)
			break
		}
	}
	if len(errs) > 0 {
		return nil, config.Combine(errs)
	}
	return targets, nil
}

// onceCommitLimit keeps the first problem that says the commit passed its
// limit, and drops the others.
func onceCommitLimit(errs config.Errors) config.Errors {
	out := errs[:0]
	seen := false
	for _, e := range errs {
		if strings.Contains(e.Msg, commitLimit) {
			if seen {
				continue
			}
			seen = true
		}
		out = append(out, e)
	}
	return out
}

// builder holds what is shared by the targets of one Build.
type builder struct {
	commit   string
	opts     Options
	apps     map[string]*config.Application
	runtimes map[string]*config.Runtime
	tmpl     *templates
	digest   []byte // reused buffer for the digest input
}

func newBuilder(set *config.Set, commit string, opts Options) *builder {
	b := &builder{
		commit:   commit,
		opts:     opts,
		apps:     make(map[string]*config.Application, len(set.Applications)),
		runtimes: make(map[string]*config.Runtime, len(set.Runtimes)),
		tmpl:     newTemplates(cmp.Or(opts.commitLimit, commitBudget())),
	}
	for _, a := range set.Applications {
		b.apps[a.Name] = a
	}
	for _, r := range set.Runtimes {
		b.runtimes[r.Name] = r
	}
	return b
}

// targetBuild gathers the problems of one target.
type targetBuild struct {
	key  Key
	errs config.Errors
}

// errorf records a problem at pos; its message names the target.
func (t *targetBuild) errorf(pos config.Pos, format string, args ...any) {
	t.errs = append(t.errs, &config.Error{Pos: pos, Msg: t.key.String() + ": " + fmt.Sprintf(format, args...)})
}

func (b *builder) target(svc *config.Service, app *config.Application, ch *config.ReleaseChannel) (Target, config.Errors) {
	tb := &targetBuild{key: Key{Application: app.Name, Service: svc.Name, ReleaseChannel: ch.Name}}
	link, ok := resolveConnection(tb, svc, ch)
	if !ok {
		return Target{}, tb.errs
	}
	rt := b.runtimes[link.Runtime]
	if rt == nil {
		tb.errorf(link.Pos, "unknown runtime %q", link.Runtime)
		return Target{}, tb.errs
	}
	bi := builtins{
		Service:        named{svc.Name},
		Application:    named{app.Name},
		ReleaseChannel: named{ch.Name},
		Runtime:        named{rt.Name},
		Commit:         b.commit,
	}
	ps := b.resolveParams(tb, svc, ch, rt, bi)
	if len(tb.errs) > 0 {
		return Target{}, ps.scrub(tb.errs)
	}

	r := newRenderer(b.tmpl, tb, ps, bi, b.opts.Registries)
	r.pos = rt.Pos
	c := &rt.Custom
	t := Target{
		Key:        tb.key,
		Runtime:    rt.Name,
		Connection: link.connection(),
		Commit:     b.commit,
		ApplyID:    r.public("applyId", c.ApplyID),
		Params:     ps.public(),
	}
	t.SecretParams = ps.secretNames()
	t.DesiredVersion = cmp.Or(t.ApplyID, b.commit)

	base := baseEnv(t, ps)
	if n := envSize(base); n > MaxJobBytes {
		tb.errorf(svc.Pos, "the parameter values take %d bytes: every job carries them in its env, and %s is the limit of one rendered job", n, mib(MaxJobBytes))
		return Target{}, ps.scrub(tb.errs)
	}
	job := func(action runner.Action, j config.Job) runner.Spec {
		s := r.job(action, j, base)
		s.Action = action
		s.Service, s.Application, s.ReleaseChannel = svc.Name, app.Name, ch.Name
		s.Runtime = rt.Name
		s.Commit = b.commit
		s.DesiredVersion = t.DesiredVersion
		s.ProxyRuntime = c.ProxyRuntime.Runtime
		s.Namespace = c.ProxyRuntime.Namespace
		return s
	}
	t.Apply = job(runner.ActionApply, c.Apply.Job)
	if c.Fetch != nil {
		s := job(runner.ActionFetch, c.Fetch.Job)
		t.Fetch = &s
	}
	if c.GetInfo != nil {
		s := job(runner.ActionGetInfo, c.GetInfo.Job)
		t.GetInfo = &s
	}
	t.Policy = policy(c)
	t.Preconditions = preconditions(ch.Preconditions)
	if len(tb.errs) > 0 {
		return Target{}, ps.scrub(tb.errs)
	}
	b.digest = appendDigestInput(b.digest[:0], &t, ps)
	t.Digest = sum(b.digest)
	return t, nil
}

// connectionLink is the channel's runtime link chosen for a service.
type connectionLink struct{ config.RuntimeLink }

func (l connectionLink) connection() string { return cmp.Or(l.Name, l.Runtime) }

// resolveConnection picks the channel's runtime for svc: the one named by
// runtimeConnection (the channel's own in perReleaseChannel, else the
// service's), or the channel's only one, even when the name given is not
// its (config validation warns).
func resolveConnection(tb *targetBuild, svc *config.Service, ch *config.ReleaseChannel) (connectionLink, bool) {
	if conn, _ := svc.RuntimeConnectionFor(ch.Name); conn != "" && len(ch.Runtimes) != 1 {
		for _, l := range ch.Runtimes {
			if (connectionLink{l}).connection() == conn {
				return connectionLink{l}, true
			}
		}
		tb.errorf(svc.Pos, "runtimeConnection %q: release channel %s has no such runtime connection (it has %s)",
			conn, ch.Name, connectionNames(ch))
		return connectionLink{}, false
	}
	switch len(ch.Runtimes) {
	case 1:
		return connectionLink{ch.Runtimes[0]}, true
	case 0:
		tb.errorf(ch.Pos, "release channel %s has no runtime", ch.Name)
	default:
		tb.errorf(svc.Pos, "runtimeConnection is required: release channel %s has several runtimes (%s)",
			ch.Name, connectionNames(ch))
	}
	return connectionLink{}, false
}

func connectionNames(ch *config.ReleaseChannel) string {
	names := make([]string, len(ch.Runtimes))
	for i, l := range ch.Runtimes {
		names[i] = (connectionLink{l}).connection()
	}
	return strings.Join(names, ", ")
}

// baseEnv is the PVN_* environment shared by a target's jobs, PVN_ACTION
// aside, sorted by name.
func baseEnv(t Target, ps *params) []runner.EnvVar {
	env := []runner.EnvVar{
		{Name: "PVN_SERVICE", Value: t.Service},
		{Name: "PVN_APPLICATION", Value: t.Application},
		{Name: "PVN_RELEASE_CHANNEL", Value: t.ReleaseChannel},
		{Name: "PVN_RUNTIME", Value: t.Runtime},
		{Name: "PVN_COMMIT", Value: t.Commit},
		{Name: "PVN_DESIRED_VERSION", Value: t.DesiredVersion},
	}
	for _, p := range ps.list {
		env = append(env, runner.EnvVar{Name: ParamEnvName(p.name), Value: p.value, Sensitive: p.secret})
	}
	slices.SortFunc(env, func(a, b runner.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	return env
}

func policy(c *config.CustomRuntime) Policy {
	p := Policy{
		FetchMode:                  config.FetchModeExitCode,
		FetchPollInterval:          config.DefaultFetchPollInterval,
		SteadyStatePollInterval:    config.DefaultSteadyStatePollInterval,
		GetInfoPollInterval:        config.DefaultGetInfoPollInterval,
		ConvergenceGracePeriod:     cmp.Or(c.ConvergenceGracePeriod, config.DefaultConvergenceGracePeriod),
		MaxConcurrency:             c.Apply.MaxConcurrency,
		Retry:                      c.Apply.RetryPolicy,
		RetryableExitCodes:         slices.Clone(c.Apply.RetryableExitCodes),
		RequireApprovalBeforeApply: c.RequireApprovalBeforeApply,
	}
	if f := c.Fetch; f != nil {
		p.FetchMode = cmp.Or(f.FetchMode, config.FetchModeExitCode)
		p.FetchPollInterval = cmp.Or(f.PollInterval, p.FetchPollInterval)
		p.SteadyStatePollInterval = cmp.Or(f.SteadyStatePollInterval, p.SteadyStatePollInterval)
		p.FetchRetry = retryOf(f.RetryPolicy, 0)
	}
	if g := c.GetInfo; g != nil {
		p.GetInfoPollInterval = cmp.Or(g.PollInterval, p.GetInfoPollInterval)
		p.GetInfoRetry = retryOf(g.RetryPolicy, config.DefaultFetchPollInterval)
	}
	p.Retry.BaseInterval = cmp.Or(p.Retry.BaseInterval, p.FetchPollInterval)
	p.Retry.MaxInterval = cmp.Or(p.Retry.MaxInterval, config.DefaultRetryMaxInterval)
	return p
}

func preconditions(pcs []config.Precondition) []Precondition {
	if len(pcs) == 0 {
		return nil
	}
	out := make([]Precondition, 0, len(pcs))
	for _, pc := range pcs {
		var p Precondition
		if s := pc.ReleaseChannelStable; s != nil {
			p.ReleaseChannelStable = s.ReleaseChannel
		}
		if m := pc.ManualApproval; m != nil {
			approval := *m
			p.ManualApproval = &approval
		}
		out = append(out, p)
	}
	return out
}
