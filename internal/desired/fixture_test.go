package desired

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
)

const (
	commitA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	commitB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// at is a position in a fake config file; line numbers let tests check that
// errors point at the right place.
func at(file string, line int) config.Pos { return config.Pos{File: file, Line: line, Col: 3} }

func text(s string, pos config.Pos) config.Text { return config.Text{Value: s, Pos: pos} }

func texts(file string, line int, ss ...string) []config.Text {
	out := make([]config.Text, len(ss))
	for i, s := range ss {
		out[i] = text(s, at(file, line+i))
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func stringParam(name, def string) config.Parameter {
	p := config.Parameter{Pos: at("rt.pvn.yaml", 30), Name: name, Type: config.ParamString}
	if def != "" {
		p.Default = ptr(def)
	}
	return p
}

func task(file string, line int, cmd ...string) *config.TaskConfig {
	return &config.TaskConfig{Program: config.Program{
		Entrypoint: texts(file, line, "sh"),
		Cmd:        texts(file, line+1, cmd...),
	}}
}

// seedRuntime is the seed's runtime: apply and fetch take changeId; a
// replicas int parameter.
func seedRuntime(name string) *config.Runtime {
	f := "runtimes/" + name + ".pvn.yaml"
	return &config.Runtime{
		Pos:  at(f, 1),
		Name: name,
		Custom: config.CustomRuntime{
			Type:         "GENERIC",
			ProxyRuntime: config.ProxyRuntime{Runtime: config.LocalRuntime},
			Apply: config.Apply{
				Job:            config.Job{TaskConfig: task(f, 10, "apply", "--id={{.Params.changeId}}")},
				MaxConcurrency: 2,
			},
			Fetch: &config.Fetch{
				Job:          config.Job{TaskConfig: task(f, 20, "fetch", "{{.Params.changeId}}")},
				PollInterval: 2e9,
			},
			Parameters: []config.Parameter{
				stringParam("changeId", "default-id"),
				{Pos: at(f, 34), Name: "replicas", Type: config.ParamInt, Default: ptr("2")},
			},
		},
	}
}

func seedApp(name string, runtimes ...string) *config.Application {
	f := "apps/" + name + ".pvn.yaml"
	links := func(line int) []config.RuntimeLink {
		var ls []config.RuntimeLink
		for i, r := range runtimes {
			ls = append(ls, config.RuntimeLink{Pos: at(f, line+i), Runtime: r})
		}
		return ls
	}
	return &config.Application{
		Pos:  at(f, 1),
		Name: name,
		ReleaseChannels: []config.ReleaseChannel{
			{Pos: at(f, 3), Name: "staging", Runtimes: links(4)},
			{Pos: at(f, 8), Name: "production", Runtimes: links(9), Preconditions: []config.Precondition{
				{ReleaseChannelStable: &config.ReleaseChannelStable{ReleaseChannel: "staging"}},
				{ManualApproval: &config.ManualApproval{Name: "prod-gate", MinApprovers: 1}},
			}},
		},
	}
}

func seedService(name, app string) *config.Service {
	return &config.Service{Pos: at("services/"+name+".pvn.yaml", 1), Name: name, Application: app}
}

// value is a service's parameter value, written at line in svc.pvn.yaml.
func value(name string, typ config.ParamType, v string, line int) config.ParameterValue {
	return config.ParameterValue{Pos: at("services/svc.pvn.yaml", line), Name: name, Type: typ,
		Value: text(v, at("services/svc.pvn.yaml", line))}
}

// seedSet is one runtime "rt", one application "app" with staging and
// production, one service "svc".
func seedSet() *config.Set {
	return &config.Set{
		Runtimes:     []*config.Runtime{seedRuntime("rt")},
		Applications: []*config.Application{seedApp("app", "rt")},
		Services:     []*config.Service{seedService("svc", "app")},
	}
}

func build(t testing.TB, set *config.Set, commit string, opts Options) []Target {
	t.Helper()
	targets, err := Build(set, commit, opts)
	require.NoError(t, err)
	return targets
}

// byKey finds the target app/svc/channel.
func byKey(t testing.TB, targets []Target, key string) *Target {
	t.Helper()
	for i := range targets {
		if targets[i].Key.String() == key {
			return &targets[i]
		}
	}
	require.FailNow(t, fmt.Sprintf("no target %s", key))
	return nil
}

// secrets is a hand-written SecretSource: values by "key@version".
type secrets struct {
	values  map[string]string
	lookups []string
}

func (s *secrets) Lookup(key, version string) (string, error) {
	k := key + "@" + version
	s.lookups = append(s.lookups, k)
	v, ok := s.values[k]
	if !ok {
		return "", fmt.Errorf("no secret %s", k)
	}
	return v, nil
}
