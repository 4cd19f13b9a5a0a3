package config

import (
	"fmt"
	"slices"
	"strings"
)

func (v *validator) application(a *Application) {
	who := describe("application", a.Name)
	channels := map[string]*ReleaseChannel{}
	for i := range a.ReleaseChannels {
		ch := &a.ReleaseChannels[i]
		if prev, dup := channels[ch.Name]; dup && ch.Name != "" {
			v.errorf(ch.NamePos, "%s: duplicate release channel %q (first defined at line %d)", who, ch.Name, prev.NamePos.Line)
			continue
		}
		channels[ch.Name] = ch
		chWho := fmt.Sprintf("release channel %q", ch.Name)
		conns := map[string]bool{}
		for _, l := range ch.Runtimes {
			if l.Runtime != "" && v.runtimes[l.Runtime] == nil {
				v.errorf(l.RuntimePos, "%s: unknown runtime %q (%s)", chWho, l.Runtime, known("runtimes", sortedKeys(v.runtimes)))
			}
			if conns[l.Name] {
				v.errorf(l.NamePos, "%s: duplicate runtime connection %q; name the connections with name:", chWho, l.Name)
			}
			conns[l.Name] = true
		}
	}
	v.connections(a)
	names := sortedKeys(channels)
	for i := range a.ReleaseChannels {
		ch := &a.ReleaseChannels[i]
		for _, p := range ch.Preconditions {
			if s := p.ReleaseChannelStable; s != nil && s.ReleaseChannel != "" && channels[s.ReleaseChannel] == nil {
				v.errorf(s.Pos, "release channel %q: releaseChannelStable names unknown release channel %q of %s (%s)",
					ch.Name, s.ReleaseChannel, who, known("release channels", names))
			}
		}
	}
	v.cycles(a, channels)
}

// connections checks that every release channel names the same runtime
// connections, which services choose from with runtimeConnection. When each
// channel has a single runtime the names do not matter.
func (v *validator) connections(a *Application) {
	if !slices.ContainsFunc(a.ReleaseChannels, func(ch ReleaseChannel) bool { return len(ch.Runtimes) > 1 }) {
		return
	}
	first := &a.ReleaseChannels[0]
	want := connectionNames(first)
	for i := range a.ReleaseChannels[1:] {
		ch := &a.ReleaseChannels[i+1]
		if got := connectionNames(ch); !slices.Equal(want, got) {
			v.errorf(ch.NamePos, "release channel %q: runtime connections (%s) differ from release channel %q (%s); every channel must name the same connections",
				ch.Name, strings.Join(got, ", "), first.Name, strings.Join(want, ", "))
		}
	}
}

func connectionNames(ch *ReleaseChannel) []string {
	var out []string
	for _, l := range ch.Runtimes {
		out = appendNew(out, l.Name)
	}
	slices.Sort(out)
	return out
}

// cycles reports each cycle of releaseChannelStable preconditions once, at
// the precondition that closes it.
func (v *validator) cycles(a *Application, channels map[string]*ReleaseChannel) {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(ch *ReleaseChannel)
	visit = func(ch *ReleaseChannel) {
		state[ch.Name] = onPath
		path = append(path, ch.Name)
		for _, p := range ch.Preconditions {
			s := p.ReleaseChannelStable
			if s == nil {
				continue
			}
			next := channels[s.ReleaseChannel]
			switch {
			case next == nil:
			case state[next.Name] == onPath:
				i := slices.Index(path, next.Name)
				cycle := append(slices.Clone(path[i:]), next.Name)
				v.errorf(s.Pos, "release channel %q: releaseChannelStable preconditions form a cycle: %s", ch.Name, strings.Join(cycle, " → "))
			case state[next.Name] == unseen:
				visit(next)
			}
		}
		path = path[:len(path)-1]
		state[ch.Name] = done
	}
	for i := range a.ReleaseChannels {
		ch := &a.ReleaseChannels[i]
		if channels[ch.Name] == ch && state[ch.Name] == unseen {
			visit(ch)
		}
	}
}

func (v *validator) service(svc *Service) {
	who := describe("service", svc.Name)
	params := v.parameters(who, svc.Parameters, true)
	lists := []CustomRuntimeValues{svc.CustomRuntime}
	for _, o := range svc.PerReleaseChannel {
		lists = append(lists, o.CustomRuntime)
	}
	for _, l := range lists {
		seen := map[string]int{}
		for _, pv := range l.ParameterValues {
			if line, dup := seen[pv.Name]; dup {
				v.errorf(pv.NamePos, "%s: duplicate value for parameter %q (also at line %d)", who, pv.Name, line)
			}
			seen[pv.Name] = pv.NamePos.Line
			if pv.Type != ParamInt && pv.Type != ParamSecret {
				v.template(who, pv.Value, params)
			}
		}
	}
	if svc.Application == "" {
		return
	}
	a := v.apps[svc.Application]
	if a == nil {
		v.errorf(svc.ApplicationPos, "%s: unknown application %q (%s)", who, svc.Application, known("applications", sortedKeys(v.apps)))
		return
	}
	overrides := map[string]bool{}
	for _, o := range svc.PerReleaseChannel {
		switch {
		case o.ReleaseChannel == "":
		case a.Channel(o.ReleaseChannel) == nil:
			v.errorf(o.ReleaseChannelPos, "%s: perReleaseChannel names unknown release channel %q of application %q (%s)",
				who, o.ReleaseChannel, a.Name, known("release channels", channelNames(a)))
		case overrides[o.ReleaseChannel]:
			v.errorf(o.ReleaseChannelPos, "%s: duplicate perReleaseChannel entry for release channel %q", who, o.ReleaseChannel)
		}
		overrides[o.ReleaseChannel] = true
	}
	if len(a.ReleaseChannels) == 0 {
		return
	}
	for i := range a.ReleaseChannels {
		ch := &a.ReleaseChannels[i]
		conn, connPos := svc.RuntimeConnectionFor(ch.Name)
		if link, ok := svc.Connection(ch); ok {
			if conn != "" && link.Name != conn {
				v.warnf(connPos, "%s: runtimeConnection %q names no runtime connection of release channel %q of application %q: its only runtime, %q, is used",
					who, conn, ch.Name, a.Name, link.Runtime)
			}
			continue
		}
		names := connectionNames(ch)
		conns := strings.Join(names, ", ")
		if conn == "" {
			if len(names) < 2 {
				continue // duplicate connection names, reported with the application
			}
			v.errorf(svc.NamePos, "%s: runtimeConnection is required: release channel %q of application %q has several runtime connections (%s)",
				who, ch.Name, a.Name, conns)
		} else {
			v.errorf(connPos, "%s: unknown runtime connection %q in release channel %q of application %q (known: %s)",
				who, conn, ch.Name, a.Name, conns)
		}
		return
	}
	v.values(who, svc, a)
}

func channelNames(a *Application) []string {
	var out []string
	for _, ch := range a.ReleaseChannels {
		out = append(out, ch.Name)
	}
	return out
}

// values checks the service's parameter values in each release channel
// against the parameters of the runtime it uses there.
func (v *validator) values(who string, svc *Service, a *Application) {
	type missingKey struct {
		runtime, param string
		typ            ParamType
	}
	missing := map[missingKey][]string{}
	var order []missingKey
	for i := range a.ReleaseChannels {
		ch := &a.ReleaseChannels[i]
		link, ok := svc.Connection(ch)
		if !ok {
			continue
		}
		r := v.runtimes[link.Runtime]
		if r == nil || r.refused {
			continue
		}
		given := map[string]bool{}
		for _, pv := range svc.ParameterValuesFor(ch.Name) {
			given[pv.Name] = true
			p := r.Custom.Parameter(pv.Name)
			switch {
			case p == nil:
				v.errorf(pv.NamePos, "%s: parameter %q is not declared by runtime %q (declared: %s)",
					who, pv.Name, r.Name, listOrNone(paramNames(r.Custom.Parameters)))
			case p.Type != "" && pv.Type != p.Type:
				v.errorf(pv.TypePos, "%s: parameter %q of runtime %q is of type %s, got %s %s value (want %s)",
					who, pv.Name, r.Name, p.Type, article(pv.Type.ValueKey()), pv.Type.ValueKey(), p.Type.ValueForm())
			}
		}
		for _, p := range r.Custom.Parameters {
			if p.Required && p.Default == nil && !given[p.Name] {
				k := missingKey{r.Name, p.Name, p.Type}
				if missing[k] == nil {
					order = append(order, k)
				}
				missing[k] = append(missing[k], ch.Name)
			}
		}
	}
	at := svc.CustomRuntime.Pos
	if at.Line == 0 {
		at = svc.NamePos
	}
	for _, k := range order {
		v.errorf(at, "%s: no value for required parameter %q of runtime %q (%s %s): give it one in the service's customRuntime.parameterValues or perReleaseChannel (%s), or a %s in the runtime",
			who, k.param, k.runtime, pluralWord(len(missing[k]), "release channel"), strings.Join(missing[k], ", "), k.typ.ValueForm(), defaultKey(k.typ))
	}
}

func paramNames(params []Parameter) []string {
	var out []string
	for _, p := range params {
		out = append(out, p.Name)
	}
	return out
}

func pluralWord(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}
