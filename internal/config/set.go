package config

import "slices"

// Runtime returns the runtime called name, or nil.
func (s *Set) Runtime(name string) *Runtime {
	for _, r := range s.Runtimes {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Application returns the application called name, or nil.
func (s *Set) Application(name string) *Application {
	for _, a := range s.Applications {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Channel returns the release channel called name, or nil.
func (a *Application) Channel(name string) *ReleaseChannel {
	for i := range a.ReleaseChannels {
		if a.ReleaseChannels[i].Name == name {
			return &a.ReleaseChannels[i]
		}
	}
	return nil
}

// RuntimeConnectionFor is the runtime connection the service names in a
// release channel, with where it was written: that of its perReleaseChannel
// entry for the channel, else its own; empty when it names none.
func (svc *Service) RuntimeConnectionFor(channel string) (string, Pos) {
	for _, o := range svc.PerReleaseChannel {
		if o.ReleaseChannel == channel && o.RuntimeConnection != "" {
			return o.RuntimeConnection, o.RuntimeConnectionPos
		}
	}
	return svc.RuntimeConnection, svc.RuntimeConnectionPos
}

// Connection returns the runtime link a service uses in a release channel:
// the one named by its runtimeConnection (see RuntimeConnectionFor), or the
// channel's only one, also when the name given is none of the channel's
// (as Prodvana does; Validate warns).
func (svc *Service) Connection(ch *ReleaseChannel) (RuntimeLink, bool) {
	name, _ := svc.RuntimeConnectionFor(ch.Name)
	for _, l := range ch.Runtimes {
		if name != "" && l.Name == name {
			return l, true
		}
	}
	if len(ch.Runtimes) == 1 {
		return ch.Runtimes[0], true
	}
	return RuntimeLink{}, false
}

// ParameterValuesFor returns the service's parameter values in a release
// channel: customRuntime.parameterValues, with those of the channel's
// perReleaseChannel entry replacing the ones of the same name and adding
// the others.
func (svc *Service) ParameterValuesFor(channel string) []ParameterValue {
	out := slices.Clone(svc.CustomRuntime.ParameterValues)
	for _, o := range svc.PerReleaseChannel {
		if o.ReleaseChannel != channel {
			continue
		}
		for _, v := range o.CustomRuntime.ParameterValues {
			i := slices.IndexFunc(out, func(p ParameterValue) bool { return p.Name == v.Name })
			if i >= 0 {
				out[i] = v
			} else {
				out = append(out, v)
			}
		}
	}
	return out
}

// Parameter returns the declared parameter called name, or nil.
func (c *CustomRuntime) Parameter(name string) *Parameter {
	for i := range c.Parameters {
		if c.Parameters[i].Name == name {
			return &c.Parameters[i]
		}
	}
	return nil
}

// Targets counts the (service, release channel) pairs of services whose
// application exists.
func (s *Set) Targets() int {
	channels := map[string]int{}
	for _, a := range s.Applications {
		if _, dup := channels[a.Name]; !dup {
			channels[a.Name] = len(a.ReleaseChannels)
		}
	}
	n := 0
	for _, svc := range s.Services {
		n += channels[svc.Application]
	}
	return n
}
