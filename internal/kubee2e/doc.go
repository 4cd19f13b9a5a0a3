// Package kubee2e holds engine-level tests of the Kubernetes backend: configs
// written as *.pvn.yaml files, loaded, validated and built into targets, then
// converged by the reconcile engine through the runner mux and the Kubernetes
// runner against the real test control plane (internal/kubetest). It has no
// code of its own besides the tests.
package kubee2e
