package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	watchtools "k8s.io/client-go/tools/watch"
)

func (p *Plane) start(runCtx, ctx context.Context, opts Options) error {
	for _, sub := range []string{"logs", "etcd", "certs", "node"} {
		if err := os.MkdirAll(filepath.Join(p.Dir, sub), 0o700); err != nil {
			return fmt.Errorf("create plane dir: %w", err)
		}
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	etcdPort, peerPort, apiPort, kubeletPort := ports[0], ports[1], ports[2], ports[3]

	token, err := randomHex(16)
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(p.Dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(token+`,kubetest-admin,kubetest-admin,"system:masters"`+"\n"), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	saKey := filepath.Join(p.Dir, "sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return err
	}

	bin := func(name string) string { return filepath.Join(opts.BinDir, name) }
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	etcd, err := p.spawn(runCtx, "etcd", bin("etcd"),
		"--name=kubetest",
		"--data-dir="+filepath.Join(p.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	if err := p.waitHTTP(ctx, etcd, &http.Client{}, etcdURL+"/health"); err != nil {
		return err
	}

	certDir := filepath.Join(p.Dir, "certs")
	api, err := p.spawn(runCtx, "kube-apiserver", bin("kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+certDir,
		"--endpoint-reconciler-type=none",
		"--token-auth-file="+tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saKey,
		"--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--kubelet-preferred-address-types=InternalIP",
		"--storage-media-type=application/vnd.kubernetes.protobuf",
	)
	if err != nil {
		return err
	}
	apiURL := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if err := p.waitHTTP(ctx, api, insecure, apiURL+"/readyz"); err != nil {
		return err
	}

	p.Kubeconfig = filepath.Join(p.Dir, "kubeconfig")
	if err := writeKubeconfig(p.Kubeconfig, apiURL, filepath.Join(certDir, "apiserver.crt"), token); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", p.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("build client: %w", err)
	}
	p.Client, p.RESTConfig = client, cfg

	if _, err := p.spawn(runCtx, "kube-controller-manager", bin("kube-controller-manager"),
		"--kubeconfig="+p.Kubeconfig,
		"--authentication-kubeconfig="+p.Kubeconfig, "--authorization-kubeconfig="+p.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port=0",
		"--leader-elect=false",
		"--service-account-private-key-file="+saKey,

		"--controllers=*",
		"--kube-api-qps=200", "--kube-api-burst=400",
	); err != nil {
		return err
	}
	if _, err := p.spawn(runCtx, "kube-scheduler", bin("kube-scheduler"),
		"--kubeconfig="+p.Kubeconfig,
		"--authentication-kubeconfig="+p.Kubeconfig, "--authorization-kubeconfig="+p.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port=0",
		"--leader-elect=false",
		"--kube-api-qps=200", "--kube-api-burst=400",
	); err != nil {
		return err
	}
	agent, err := p.spawn(runCtx, "pvn-nodeagent", bin("pvn-nodeagent"),
		"--kubeconfig="+p.Kubeconfig,
		"--node-name="+p.NodeName,
		"--listen=127.0.0.1:"+strconv.Itoa(kubeletPort),
		"--path="+opts.NodePath,
		"--work-dir="+filepath.Join(p.Dir, "node"),
		"--missing-image-marker="+opts.MissingImageMarker,
	)
	if err != nil {
		return err
	}
	if err := p.waitNodeReady(ctx, agent); err != nil {
		return err
	}
	return p.waitServiceAccount(ctx, "default", "default")
}

// waitHTTP waits until url answers 200, or proc exits, or ctx ends.
func (p *Plane) waitHTTP(ctx context.Context, proc *process, client *http.Client, url string) error {
	err := wait.PollUntilContextCancel(ctx, pollInterval, true, func(ctx context.Context) (bool, error) {
		if proc.exited() {
			return false, fmt.Errorf("%s exited: %s", proc.name, p.Log(proc.name))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s at %s: %w\n%s", proc.name, url, err, p.Log(proc.name))
	}
	return nil
}

// waitNodeReady watches the node until it is Ready and schedulable.
func (p *Plane) waitNodeReady(ctx context.Context, agent *process) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-agent.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	nodes := p.Client.CoreV1().Nodes()
	err := until(ctx, fields.OneTermEqualSelector("metadata.name", p.NodeName).String(),
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return nodes.List(ctx, o) },
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return nodes.Watch(ctx, o) },
		func(obj runtime.Object) bool {
			node, ok := obj.(*corev1.Node)
			if !ok {
				return false
			}
			// The node lifecycle controller lifts the not-ready taint once
			// the node says it is Ready; until then nothing schedules there.
			for _, taint := range node.Spec.Taints {
				if taint.Effect == corev1.TaintEffectNoSchedule {
					return false
				}
			}
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return true
				}
			}
			return false
		})
	if err != nil {
		return fmt.Errorf("wait for node %s to be Ready: %w\n%s", p.NodeName, err, p.Log("pvn-nodeagent"))
	}
	return nil
}

// waitServiceAccount waits until the controller manager made a service account,
// so that pods can be created in its namespace.
func (p *Plane) waitServiceAccount(ctx context.Context, namespace, name string) error {
	sas := p.Client.CoreV1().ServiceAccounts(namespace)
	err := until(ctx, fields.OneTermEqualSelector("metadata.name", name).String(),
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return sas.List(ctx, o) },
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return sas.Watch(ctx, o) },
		func(runtime.Object) bool { return true })
	if err != nil {
		return fmt.Errorf("wait for service account %s/%s: %w\n%s", namespace, name, err, p.Log("kube-controller-manager"))
	}
	return nil
}

// until lists the objects the field selector picks, then watches them from
// there, until cond holds for one of them.
func until(ctx context.Context, selector string,
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
	cond func(runtime.Object) bool,
) error {
	opts := metav1.ListOptions{FieldSelector: selector}
	objs, err := list(ctx, opts)
	if err != nil {
		return err
	}
	items, err := meta.ExtractList(objs)
	if err != nil {
		return err
	}
	for _, obj := range items {
		if cond(obj) {
			return nil
		}
	}
	if opts.ResourceVersion, err = meta.NewAccessor().ResourceVersion(objs); err != nil {
		return err
	}
	w, err := watchFn(ctx, opts)
	if err != nil {
		return err
	}
	defer w.Stop()
	_, err = watchtools.UntilWithoutRetry(ctx, w, func(e watch.Event) (bool, error) {
		return e.Type != watch.Deleted && cond(e.Object), nil
	})
	return err
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func writeRSAKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	block := &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("write service account key: %w", err)
	}
	return nil
}

func writeKubeconfig(path, server, caFile, token string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("read apiserver certificate: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["kubetest-admin"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "kubetest-admin"}
	cfg.CurrentContext = "kubetest"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}
