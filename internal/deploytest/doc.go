// Package deploytest tests deploy/, the kustomize base, and the Dockerfile:
// the base passes the API server's dry run on the real test control plane
// (internal/kubetest), its RBAC is enough for the Kubernetes runner to run a
// Job with the bot's service account token and no more, and the image's
// binaries build static. It has no code of its own besides the tests.
package deploytest
