package main

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
)

// envResolver gives a container's environment as the kubelet does: values,
// secret and config map keys (read from the informers' caches, else from
// the apiserver), and the pod's own fields.
type envResolver struct {
	client     kubernetes.Interface
	secrets    corev1listers.SecretLister
	configMaps corev1listers.ConfigMapLister
}

// resolve returns "NAME=value" pairs, or an error worded like the kubelet's
// CreateContainerConfigError messages.
func (r *envResolver) resolve(ctx context.Context, pod *corev1.Pod, c corev1.Container) ([]string, error) {
	var out []string
	for _, e := range c.Env {
		value, skip, err := r.value(ctx, pod, e)
		if err != nil {
			return nil, err
		}
		if !skip {
			out = append(out, e.Name+"="+value)
		}
	}
	return out, nil
}

func (r *envResolver) value(ctx context.Context, pod *corev1.Pod, e corev1.EnvVar) (value string, skip bool, err error) {
	from := e.ValueFrom
	switch {
	case from == nil:
		return e.Value, false, nil
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		secret, err := r.secret(ctx, pod.Namespace, ref.Name)
		if apierrors.IsNotFound(err) && optional {
			return "", true, nil
		}
		if err != nil {
			return "", false, err
		}
		data, ok := secret.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(data), false, nil
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := r.configMap(ctx, pod.Namespace, ref.Name)
		if apierrors.IsNotFound(err) && optional {
			return "", true, nil
		}
		if err != nil {
			return "", false, err
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return v, false, nil
	case from.FieldRef != nil:
		switch from.FieldRef.FieldPath {
		case "metadata.name":
			return pod.Name, false, nil
		case "metadata.namespace":
			return pod.Namespace, false, nil
		case "metadata.uid":
			return string(pod.UID), false, nil
		case "spec.nodeName":
			return pod.Spec.NodeName, false, nil
		case "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, false, nil
		case "status.podIP", "status.hostIP":
			return "127.0.0.1", false, nil
		}
		return "", false, fmt.Errorf("pvn-nodeagent does not support fieldRef %s", from.FieldRef.FieldPath)
	}
	return "", false, fmt.Errorf("pvn-nodeagent does not support the valueFrom of %s", e.Name)
}

func (r *envResolver) secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	if s, err := r.secrets.Secrets(ns).Get(name); err == nil {
		return s, nil
	}
	s, err := r.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, apierrors.NewNotFound(corev1.Resource("secrets"), name)
	}
	return s, err
}

func (r *envResolver) configMap(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	if cm, err := r.configMaps.ConfigMaps(ns).Get(name); err == nil {
		return cm, nil
	}
	return r.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
}
