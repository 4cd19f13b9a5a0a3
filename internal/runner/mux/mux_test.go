package mux

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/runner"
)

// fakeRunner records the specs it was given and returns ResultValue, ErrValue.
type fakeRunner struct {
	specs       []runner.Spec
	ResultValue runner.Result
	ErrValue    error
}

func (f *fakeRunner) Run(_ context.Context, spec runner.Spec) (runner.Result, error) {
	f.specs = append(f.specs, spec)
	return f.ResultValue, f.ErrValue
}

func TestMuxRoutes(t *testing.T) {
	tests := map[string]struct {
		proxy    string
		noLocal  bool
		noKube   bool
		linked   []string
		wantTo   string // "local", "kube", or "" for an error
		wantErrs []string
	}{
		"local":                    {proxy: "local", linked: []string{"prod"}, wantTo: "local"},
		"linked cluster":           {proxy: "prod", linked: []string{"staging", "prod"}, wantTo: "kube"},
		"unknown names the linked": {proxy: "qa", linked: []string{"staging", "prod"}, wantErrs: []string{`"qa"`, "linked: prod, staging", "apply of demo/shop/staging"}},
		"nothing linked":           {proxy: "prod", wantErrs: []string{`"prod"`, "linked: none"}},
		"empty proxy runtime":      {proxy: "", linked: []string{"prod"}, wantErrs: []string{`""`, "linked: prod"}},
		"local disabled":           {proxy: "local", noLocal: true, wantErrs: []string{"local runner is not enabled"}},
		"kube runner missing":      {proxy: "prod", linked: []string{"prod"}, noKube: true, wantErrs: []string{`"prod"`, "no Kubernetes runner"}},
		"names are case sensitive": {proxy: "Prod", linked: []string{"prod"}, wantErrs: []string{`"Prod"`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			local := &fakeRunner{ResultValue: runner.Result{ExitCode: 1}}
			kube := &fakeRunner{ResultValue: runner.Result{ExitCode: 2}}
			var l, k Runner = local, kube
			if tc.noLocal {
				l = nil
			}
			if tc.noKube {
				k = nil
			}
			m := New(l, k, tc.linked)
			spec := runner.Spec{RunID: "r1", Action: runner.ActionApply, Application: "demo", Service: "shop", ReleaseChannel: "staging", ProxyRuntime: tc.proxy}

			res, err := m.Run(context.Background(), spec)

			if tc.wantTo == "" {
				require.Error(t, err)
				for _, s := range tc.wantErrs {
					assert.Contains(t, err.Error(), s)
				}
				assert.Empty(t, local.specs)
				assert.Empty(t, kube.specs)
				return
			}
			require.NoError(t, err)
			chosen, other := local, kube
			if tc.wantTo == "kube" {
				chosen, other = kube, local
			}
			assert.Equal(t, chosen.ResultValue, res)
			assert.Equal(t, []runner.Spec{spec}, chosen.specs)
			assert.Empty(t, other.specs)
		})
	}
}

func TestMuxPassesBackendErrorsThrough(t *testing.T) {
	boom := errors.New("boom")
	kube := &fakeRunner{ErrValue: boom, ResultValue: runner.Result{ExitCode: -1, ExecError: "x"}}
	m := New(&fakeRunner{}, kube, []string{"prod"})

	res, err := m.Run(context.Background(), runner.Spec{ProxyRuntime: "prod"})

	require.ErrorIs(t, err, boom)
	assert.Equal(t, kube.ResultValue, res)
}

func TestMuxPassesContext(t *testing.T) {
	type key struct{}
	var got any
	m := New(runFunc(func(ctx context.Context, _ runner.Spec) (runner.Result, error) {
		got = ctx.Value(key{})
		return runner.Result{}, nil
	}), nil, nil)

	_, err := m.Run(context.WithValue(context.Background(), key{}, "v"), runner.Spec{ProxyRuntime: Local})

	require.NoError(t, err)
	assert.Equal(t, "v", got)
}

func TestNewCopiesRuntimes(t *testing.T) {
	linked := []string{"prod"}
	kube := &fakeRunner{}
	m := New(nil, kube, linked)
	linked[0] = "other"

	_, err := m.Run(context.Background(), runner.Spec{ProxyRuntime: "prod"})

	require.NoError(t, err)
	assert.Len(t, kube.specs, 1)
}

type runFunc func(context.Context, runner.Spec) (runner.Result, error)

func (f runFunc) Run(ctx context.Context, s runner.Spec) (runner.Result, error) { return f(ctx, s) }
