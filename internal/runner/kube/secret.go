package kube

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pvnbot/pvnbot/internal/runner"
)

// createJob creates the Job. Sensitive values (secret parameters) are not
// written into it: they go into a Secret of their own, which the Job's
// variables reference and which the Job owns, so it goes when the Job does.
func createJob(ctx context.Context, client kubernetes.Interface, job *batchv1.Job, spec runner.Spec) (*batchv1.Job, error) {
	ns := job.Namespace
	data := map[string][]byte{}
	for _, e := range spec.Env {
		if e.Sensitive && e.SecretRef == nil {
			data[e.Name] = []byte(e.Value)
		}
	}
	if len(data) == 0 {
		created, err := client.BatchV1().Jobs(ns).Create(ctx, job, metav1CreateOptions)
		if err != nil {
			return nil, fmt.Errorf("create job in namespace %s: %w", ns, err)
		}
		return created, nil
	}

	secrets := client.CoreV1().Secrets(ns)
	secret, err := secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{GenerateName: job.GenerateName + "env-", Labels: Labels(spec)},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}, metav1CreateOptions)
	if err != nil {
		return nil, fmt.Errorf("create the secret of the job's sensitive variables in namespace %s: %w", ns, err)
	}
	for i := range job.Spec.Template.Spec.Containers {
		env := job.Spec.Template.Spec.Containers[i].Env
		for j := range env {
			if _, ok := data[env[j].Name]; ok && env[j].ValueFrom == nil {
				env[j].Value = ""
				env[j].ValueFrom = &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: secret.Name}, Key: env[j].Name,
				}}
			}
		}
	}
	created, err := client.BatchV1().Jobs(ns).Create(ctx, job, metav1CreateOptions)
	if err != nil {
		_ = secrets.Delete(context.WithoutCancel(ctx), secret.Name, metav1.DeleteOptions{})
		return nil, fmt.Errorf("create job in namespace %s: %w", ns, err)
	}
	secret.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: "batch/v1", Kind: "Job", Name: created.Name, UID: created.UID,
	}}
	if _, err := secrets.Update(ctx, secret, metav1.UpdateOptions{FieldManager: "pvnbot"}); err != nil {
		return nil, fmt.Errorf("make job %s/%s the owner of secret %s: %w", ns, created.Name, secret.Name, err)
	}
	return created, nil
}
