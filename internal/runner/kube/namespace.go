package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/pvnbot/pvnbot/internal/runner"
)

// serviceAccountWait bounds the wait for a new namespace's default service
// account, without which its pods cannot be created.
const serviceAccountWait = 30 * time.Second

// namespace returns the namespace of spec's Job: the configured one, which
// must exist, or the runtime's default one, created when missing. Namespaces
// found or created are remembered, so each is checked once per Runner.
func (r *Runner) namespace(ctx context.Context, client kubernetes.Interface, spec runner.Spec) (string, error) {
	ns := spec.Namespace
	if ns == "" {
		ns = DefaultNamespace(spec.Runtime)
	}
	key := spec.ProxyRuntime + "/" + ns
	r.mu.Lock()
	known := r.namespaces[key]
	r.mu.Unlock()
	if known {
		return ns, nil
	}

	_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case err == nil:
	case apierrors.IsNotFound(err) && spec.Namespace != "":
		return "", fmt.Errorf("namespace %s does not exist in Kubernetes runtime %s: create it or remove containerOrchestration.k8s.namespace from runtime %s",
			ns, spec.ProxyRuntime, spec.Runtime)
	case apierrors.IsNotFound(err):
		if err := createNamespace(ctx, client, ns); err != nil {
			return "", err
		}
		r.log.InfoContext(ctx, "namespace created", "cluster", spec.ProxyRuntime, "namespace", ns)
	default:
		return "", fmt.Errorf("get namespace %s: %w", ns, err)
	}

	r.mu.Lock()
	r.namespaces[key] = true
	r.mu.Unlock()
	return ns, nil
}

func createNamespace(ctx context.Context, client kubernetes.Interface, ns string) error {
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{LabelManagedBy: "pvnbot"}}}
	_, err := client.CoreV1().Namespaces().Create(ctx, obj, metav1CreateOptions)
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	// The controller manager adds the default service account in a moment;
	// pods created before it are refused and the Job controller backs off.
	ctx, cancel := context.WithTimeout(ctx, serviceAccountWait)
	defer cancel()
	sas := client.CoreV1().ServiceAccounts(ns)
	only := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "default").String()}
	list, err := sas.List(ctx, only)
	if err != nil {
		return fmt.Errorf("list service accounts of namespace %s: %w", ns, err)
	}
	if len(list.Items) > 0 {
		return nil
	}
	only.ResourceVersion = list.ResourceVersion
	w, err := sas.Watch(ctx, only)
	if err != nil {
		return fmt.Errorf("watch service accounts of namespace %s: %w", ns, err)
	}
	defer w.Stop()
	_, err = watchtools.UntilWithoutRetry(ctx, w, func(e watch.Event) (bool, error) {
		return e.Type == watch.Added, nil
	})
	if err != nil {
		return fmt.Errorf("wait for the default service account of namespace %s: %w", ns, err)
	}
	return nil
}
