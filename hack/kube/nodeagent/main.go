// Command pvn-nodeagent is a test-only Kubernetes node whose pods really run:
// each container's command and args run as a local process, its output is
// served through the kubelet API (so `kubectl logs` works through the
// apiserver) and its real exit code ends up in the pod's status.
//
// Images are never pulled. An image whose name contains the marker given by
// --missing-image-marker fails as if it could not be pulled (ErrImagePull, then
// ImagePullBackOff), so that image pull failures can be tested.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	vkslog "github.com/virtual-kubelet/virtual-kubelet/log/slog"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pvn-nodeagent:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		kubeconfig    = flag.String("kubeconfig", "", "kubeconfig of the control plane (required)")
		nodeName      = flag.String("node-name", "pvn-node", "name of the node to register")
		listen        = flag.String("listen", "127.0.0.1:10250", "address of the kubelet API (TLS)")
		path          = flag.String("path", os.Getenv("PATH"), "PATH in which container commands are looked up, and given to them")
		workDir       = flag.String("work-dir", "", "directory for container logs and working directories (required)")
		missingMarker = flag.String("missing-image-marker", "missing", "images whose name contains this cannot be pulled")
		verbose       = flag.Bool("v", false, "debug logging")
	)
	flag.Parse()
	if *kubeconfig == "" || *workDir == "" {
		return fmt.Errorf("--kubeconfig and --work-dir are required")
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	vklog.L = vkslog.FromSlog(logger)

	host, portText, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("parse --listen: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("parse --listen port: %w", err)
	}

	restConfig, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	// client-go's default (5 requests/s) would pace pods at a few per second:
	// each costs several status updates and events.
	restConfig.QPS, restConfig.Burst = 200, 400
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("build client: %w", err)
	}

	cert, err := selfSignedCert(host)
	if err != nil {
		return fmt.Errorf("make serving certificate: %w", err)
	}

	if err := os.MkdirAll(*workDir, 0o755); err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}

	mux := http.NewServeMux()
	var prov *provider
	newProvider := func(cfg nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
		prov = newLocalProvider(logger, client, cfg, *path, *workDir, *missingMarker)
		return prov, nil, nil
	}
	n, err := nodeutil.NewNode(*nodeName, newProvider,
		nodeutil.WithClient(client),
		func(cfg *nodeutil.NodeConfig) error {
			cfg.HTTPListenAddr = *listen
			cfg.Handler = mux
			cfg.NumWorkers = 4
			// The provider resolves env itself, to report a missing secret
			// as the kubelet does (CreateContainerConfigError).
			cfg.SkipDownwardAPIResolution = true
			cfg.NodeSpec.Status = nodeStatus(host, int32(port))
			cfg.NodeSpec.Labels["kubernetes.io/os"] = runtime.GOOS
			cfg.NodeSpec.Labels["kubernetes.io/arch"] = runtime.GOARCH
			return nil
		},
		nodeutil.AttachProviderRoutes(mux),
		nodeutil.WithTLSConfig(func(c *tls.Config) error {
			c.Certificates = []tls.Certificate{cert}
			return nil
		}),
	)
	if err != nil {
		return fmt.Errorf("create node: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = vklog.WithLogger(ctx, vklog.L)

	go func() {
		if err := n.WaitReady(ctx, 0); err == nil {
			logger.Info("node ready", "node", *nodeName, "kubeletAPI", *listen)
		}
	}()
	err = n.Run(ctx)
	prov.killAll()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("run node: %w", err)
	}
	return nil
}

func nodeStatus(host string, port int32) corev1.NodeStatus {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("16"),
		corev1.ResourceMemory:           resource.MustParse("64Gi"),
		corev1.ResourcePods:             resource.MustParse("200"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	return corev1.NodeStatus{
		Phase:       corev1.NodePending,
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure"},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory"},
			{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID"},
			{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "RouteCreated"},
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: host},
			{Type: corev1.NodeHostName, Address: host},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{
			KubeletEndpoint: corev1.DaemonEndpoint{Port: port},
		},
		NodeInfo: corev1.NodeSystemInfo{
			OperatingSystem: runtime.GOOS,
			Architecture:    runtime.GOARCH,
			KubeletVersion:  "v1.37.2",
		},
	}
}
