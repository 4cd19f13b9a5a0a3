// Package mux routes each job to the runner backend of its proxy runtime:
// "local" to the local backend, the name of a linked Kubernetes runtime to
// the Kubernetes backend.
package mux

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pvnbot/pvnbot/internal/runner"
)

// Local is the proxy runtime name of jobs run as processes on the bot's
// machine.
const Local = "local"

// Runner runs one job to completion.
type Runner interface {
	// Run runs spec and returns how it ended. An error means the job could
	// not be run or awaited; a job that exited non-zero is not an error.
	Run(ctx context.Context, spec runner.Spec) (runner.Result, error)
}

// Mux is a Runner that hands each job to the backend of its ProxyRuntime.
// It is safe for concurrent use when its backends are.
type Mux struct {
	local  Runner
	kube   Runner
	linked []string // sorted
}

// New returns a Mux running "local" jobs with local and jobs whose proxy
// runtime is one of kubeRuntimes (the linked Kubernetes runtimes) with kube.
// Either backend may be nil when no job is meant for it; such a job is then
// an error rather than a panic.
func New(local, kube Runner, kubeRuntimes []string) *Mux {
	linked := slices.Clone(kubeRuntimes)
	slices.Sort(linked)
	return &Mux{local: local, kube: kube, linked: slices.Compact(linked)}
}

// Run runs spec on the backend of spec.ProxyRuntime.
func (m *Mux) Run(ctx context.Context, spec runner.Spec) (runner.Result, error) {
	backend, err := m.backend(spec.ProxyRuntime)
	if err != nil {
		return runner.Result{}, fmt.Errorf("run %s of %s/%s/%s: %w", spec.Action, spec.Application, spec.Service, spec.ReleaseChannel, err)
	}
	return backend.Run(ctx, spec)
}

func (m *Mux) backend(proxy string) (Runner, error) {
	if proxy == Local {
		if m.local == nil {
			return nil, fmt.Errorf("proxy runtime %q: the local runner is not enabled", proxy)
		}
		return m.local, nil
	}
	if _, ok := slices.BinarySearch(m.linked, proxy); !ok {
		return nil, fmt.Errorf("proxy runtime %q is neither %q nor a linked Kubernetes runtime (linked: %s)", proxy, Local, m.linkedList())
	}
	if m.kube == nil {
		return nil, fmt.Errorf("proxy runtime %q: no Kubernetes runner is configured", proxy)
	}
	return m.kube, nil
}

func (m *Mux) linkedList() string {
	if len(m.linked) == 0 {
		return "none"
	}
	return strings.Join(m.linked, ", ")
}
