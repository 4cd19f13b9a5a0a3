package deploytest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/runner/kube"
)

// cluster is the name under which the plane is linked to the runner.
const cluster = "in-cluster"

var runtimeSeq atomic.Int64

// runtimeName is a runtime name not used before by this test binary, so
// that each run has a namespace of its own for the runner to create.
func runtimeName(base string) string { return fmt.Sprintf("%s-%d", base, runtimeSeq.Add(1)) }

// installIdentity creates, as the cluster's admin, what deploy/ gives the
// bot: its Namespace, ServiceAccount, ClusterRole and ClusterRoleBinding, as
// kustomize renders them. It returns the ServiceAccount.
func installIdentity(t *testing.T, ctx context.Context) *corev1.ServiceAccount {
	t.Helper()
	objs := build(t, deployDir())
	created := func(err error) {
		t.Helper()
		if !apierrors.IsAlreadyExists(err) {
			require.NoError(t, err)
		}
	}
	c := plane.Client
	_, err := c.CoreV1().Namespaces().Create(ctx, one[*corev1.Namespace](t, objs), metav1.CreateOptions{})
	created(err)
	sa := one[*corev1.ServiceAccount](t, objs)
	_, err = c.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa, metav1.CreateOptions{})
	created(err)
	_, err = c.RbacV1().ClusterRoles().Create(ctx, one[*rbacv1.ClusterRole](t, objs), metav1.CreateOptions{})
	created(err)
	_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, one[*rbacv1.ClusterRoleBinding](t, objs), metav1.CreateOptions{})
	created(err)
	return sa
}

// clientAs is a client of the plane that authenticates with a token of the
// service account (TokenRequest API), not as the admin.
func clientAs(t *testing.T, ctx context.Context, namespace, name string) kubernetes.Interface {
	t.Helper()
	tr, err := plane.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	cfg := rest.AnonymousClientConfig(plane.RESTConfig)
	cfg.BearerToken = tr.Status.Token
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)

	review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Equal(t, "system:serviceaccount:"+namespace+":"+name, review.Status.UserInfo.Username)
	require.NotContains(t, review.Status.UserInfo.Groups, "system:masters")
	return client
}

// can asks the API server whether client may do verb on the resource.
func can(t *testing.T, ctx context.Context, client kubernetes.Interface, a authorizationv1.ResourceAttributes) bool {
	t.Helper()
	r, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
		&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &a}},
		metav1.CreateOptions{})
	require.NoError(t, err)
	return r.Status.Allowed
}

// lockedBuffer collects the runner's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func taskSpec(runtime, script string) runner.Spec {
	return runner.Spec{
		RunID:          fmt.Sprintf("%s-%d", runtime, time.Now().UnixNano()),
		Action:         runner.ActionApply,
		Service:        "shop",
		Application:    "demo",
		ReleaseChannel: "staging",
		Runtime:        runtime,
		Commit:         "0123456789abcdef0123456789abcdef01234567",
		DesiredVersion: "v1",
		ProxyRuntime:   cluster,
		Image:          "example.org/tools:1",
		Entrypoint:     []string{"sh", "-c"},
		Cmd:            []string{script},
		Env: []runner.EnvVar{
			{Name: "PVN_SERVICE", Value: "shop"},
			{Name: "PVN_PARAM_PASSWORD", Value: "hunter2", Sensitive: true},
		},
	}
}

// The RBAC of deploy/ is enough for the Kubernetes runner: with the bot's
// service account token, not the admin's, it creates the runtime's
// namespace, waits for its default service account, creates the Secret of a
// secret parameter and hands it to the Job, awaits the Job to its end, reads
// the pod's log, and deletes a Job whose image cannot be pulled.
func TestRunnerRunsWithTheBotServiceAccount(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	sa := installIdentity(t, ctx)
	client := clientAs(t, ctx, sa.Namespace, sa.Name)
	// RBAC is read by the API server from an informer: wait, with a
	// deadline, for the binding to be in force.
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		return can(t, ctx, client, authorizationv1.ResourceAttributes{Verb: "create", Group: "batch", Resource: "jobs", Namespace: "anywhere"}), nil
	})
	require.NoError(t, err, "the ClusterRoleBinding never took effect")

	var log lockedBuffer
	r := kube.New(map[string]kubernetes.Interface{cluster: client}, kube.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))

	rt := runtimeName("rbac")
	ns := kube.DefaultNamespace(rt)
	spec := taskSpec(rt, `echo "hello from $PVN_SERVICE, password=$PVN_PARAM_PASSWORD"; exit 3`)
	res, err := r.Run(ctx, spec)
	require.NoError(t, err, "%s\n%s", log.String(), plane.Log("pvn-nodeagent"))
	assert.Equal(t, 3, res.ExitCode)
	assert.Equal(t, "hello from shop, password=hunter2\n", string(res.Stdout), "the pod's log was read")

	made, err := plane.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	require.NoError(t, err, "the runner created the runtime's namespace")
	assert.Equal(t, "pvnbot", made.Labels[kube.LabelManagedBy])
	jobs, err := plane.Client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelRunID + "=" + kube.LabelValue(spec.RunID)})
	require.NoError(t, err)
	require.Len(t, jobs.Items, 1)
	secrets, err := plane.Client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelRunID + "=" + kube.LabelValue(spec.RunID)})
	require.NoError(t, err)
	require.Len(t, secrets.Items, 1)
	require.Len(t, secrets.Items[0].OwnerReferences, 1, "the runner made the Job the owner of its Secret (update)")
	assert.Equal(t, jobs.Items[0].UID, secrets.Items[0].OwnerReferences[0].UID)

	// The bot cannot read back even the Secret it made.
	_, err = client.CoreV1().Secrets(ns).Get(ctx, secrets.Items[0].Name, metav1.GetOptions{})
	assert.True(t, apierrors.IsForbidden(err), "get secret: %v", err)

	pull := taskSpec(rt, "exit 0")
	pull.Image = "registry.example/missing-image:1"
	_, err = r.Run(ctx, pull)
	require.ErrorIs(t, err, kube.ErrNotStarted)
	jobs, err = plane.Client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelRunID + "=" + kube.LabelValue(pull.RunID)})
	require.NoError(t, err)
	for _, j := range jobs.Items {
		untilJobGone(t, ctx, ns, j.Name)
	}
	assert.NotContains(t, log.String(), "delete job", "the runner's delete was allowed")
}

// Without deploy/'s binding, the same runner is refused: the token above
// is not an admin's in disguise.
func TestRunnerRefusedWithoutTheRBAC(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	installIdentity(t, ctx)
	_, err := plane.Client.CoreV1().ServiceAccounts("pvnbot").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "unbound"}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	client := clientAs(t, ctx, "pvnbot", "unbound")
	r := kube.New(map[string]kubernetes.Interface{cluster: client})
	_, err = r.Run(ctx, taskSpec(runtimeName("unbound"), "exit 0"))
	require.Error(t, err)
	assert.True(t, apierrors.IsForbidden(err), "%v", err)
}

// Every call the runner makes is allowed, and the rest is not: no reading
// Secrets, no pods of its own, no exec, no deleting namespaces, no RBAC, no
// tokens.
func TestRBACIsTheLeastTheRunnerNeeds(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	sa := installIdentity(t, ctx)
	client := clientAs(t, ctx, sa.Namespace, sa.Name)
	attr := func(verb, group, resource, sub string) authorizationv1.ResourceAttributes {
		a := authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Subresource: sub}
		if resource != "namespaces" && resource != "nodes" && resource != "clusterrolebindings" {
			a.Namespace = "pvn-proxy-runtime-any"
		}
		return a
	}
	// The calls of internal/runner/kube, file by file.
	allowed := []authorizationv1.ResourceAttributes{
		attr("get", "", "namespaces", ""), attr("create", "", "namespaces", ""), // namespace.go
		attr("list", "", "serviceaccounts", ""), attr("watch", "", "serviceaccounts", ""),
		attr("create", "batch", "jobs", ""), attr("list", "batch", "jobs", ""), // secret.go, job.go
		attr("watch", "batch", "jobs", ""), attr("delete", "batch", "jobs", ""), // await.go
		attr("list", "", "pods", ""), attr("watch", "", "pods", ""), attr("get", "", "pods", "log"),
		attr("list", "", "events", ""),
		attr("create", "", "secrets", ""), attr("update", "", "secrets", ""), attr("delete", "", "secrets", ""), // secret.go
	}
	// Waits for the binding, as above.
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		return can(t, ctx, client, allowed[0]), nil
	})
	require.NoError(t, err)
	for _, a := range allowed {
		assert.True(t, can(t, ctx, client, a), "%s %s/%s %s: the runner does it", a.Verb, a.Group, a.Resource, a.Subresource)
	}
	forbidden := []authorizationv1.ResourceAttributes{
		attr("get", "", "secrets", ""), attr("list", "", "secrets", ""), attr("watch", "", "secrets", ""),
		attr("create", "", "pods", ""), attr("delete", "", "pods", ""), attr("create", "", "pods", "exec"),
		attr("update", "batch", "jobs", ""), attr("patch", "batch", "jobs", ""),
		attr("list", "", "namespaces", ""), attr("delete", "", "namespaces", ""), attr("update", "", "namespaces", ""),
		attr("create", "apps", "deployments", ""), attr("create", "", "serviceaccounts", "token"),
		attr("create", "rbac.authorization.k8s.io", "clusterrolebindings", ""), attr("list", "", "nodes", ""),
	}
	for _, a := range forbidden {
		assert.False(t, can(t, ctx, client, a), "%s %s/%s %s: the runner does not need it", a.Verb, a.Group, a.Resource, a.Subresource)
	}

	// And the API server refuses such calls for real.
	_, err = client.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "list secrets in kube-system: %v", err)
	err = client.CoreV1().Namespaces().Delete(ctx, "kube-system", metav1.DeleteOptions{})
	assert.True(t, apierrors.IsForbidden(err), "delete namespace: %v", err)
	_, err = client.CoreV1().Pods("pvnbot").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "not-allowed"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.org/tools:1"}}},
	}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsForbidden(err), "create pod: %v", err)
}

// untilJobGone watches a Job, as the admin, until it is deleted.
func untilJobGone(t *testing.T, ctx context.Context, ns, name string) {
	t.Helper()
	jobs := plane.Client.BatchV1().Jobs(ns)
	w, err := jobs.Watch(ctx, metav1.SingleObject(metav1.ObjectMeta{Name: name}))
	require.NoError(t, err)
	defer w.Stop()
	if _, err := jobs.Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return
	}
	_, err = watchtools.UntilWithoutRetry(ctx, w, func(e watch.Event) (bool, error) { return e.Type == watch.Deleted, nil })
	require.NoError(t, err, "job %s/%s not deleted", ns, name)
}
