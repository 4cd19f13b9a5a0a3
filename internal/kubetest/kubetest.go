// Package kubetest starts a real Kubernetes control plane for tests: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and pvn-nodeagent, a
// node whose pods run their containers' commands as local processes, with
// real exit codes and logs.
//
// The binaries are built by hack/kube/build.sh into a cache outside the
// repository; `make test` runs it first. Start one Plane per test binary, from
// TestMain (see Main), since starting one takes a few seconds.
package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// KubeVersion is the Kubernetes version the binaries are built from; it keys
// their cache folder.
const KubeVersion = "v1.37.2"

// Binaries of a plane, all in one folder.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "pvn-nodeagent"}

// Options tune a plane. The zero value is usable.
type Options struct {
	// BinDir holds the binaries; empty means BinDir().
	BinDir string
	// NodePath is the PATH in which the node looks up container commands and
	// which it gives them; empty means /usr/local/bin:/usr/bin:/bin.
	NodePath string
	// MissingImageMarker: images whose name contains it fail to pull.
	// Empty means "missing".
	MissingImageMarker string
	// StartTimeout bounds Start; zero means 2 minutes.
	StartTimeout time.Duration
}

// Plane is a running control plane with one node.
type Plane struct {
	// Client is a cluster-admin (system:masters) client.
	Client kubernetes.Interface
	// RESTConfig is the configuration Client was built from.
	RESTConfig *rest.Config
	// Kubeconfig is the path of a kubeconfig file for the plane (context "kubetest").
	Kubeconfig string
	// NodeName is the name of the node whose pods run.
	NodeName string
	// Dir holds the plane's data, certificates and component logs
	// (logs/<component>.log); it is removed by Stop.
	Dir string

	cancel context.CancelFunc
	procs  []*process
}

// BinDir returns the folder holding the plane's binaries:
// $PVNBOT_KUBE_BIN when set, else
// ${PVNBOT_KUBE_CACHE:-$HOME/.cache/pvnbot/kube}/k8s-<KubeVersion>/bin, the folder
// hack/kube/build.sh fills. It fails, saying how to build them, when one is missing.
func BinDir() (string, error) {
	dir := os.Getenv("PVNBOT_KUBE_BIN")
	if dir == "" {
		cache := os.Getenv("PVNBOT_KUBE_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("find the kube binaries: %w", err)
			}
			cache = filepath.Join(home, ".cache", "pvnbot", "kube")
		}
		dir = filepath.Join(cache, "k8s-"+KubeVersion, "bin")
	}
	for _, name := range binaries {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("%s is missing from %s: run hack/kube/build.sh (make test does) to build the test control plane", name, dir)
		}
	}
	return dir, nil
}

// Main starts a plane, stores it in *plane, runs the tests and stops the plane.
// Use it as os.Exit(kubetest.Main(m, opts, &plane)) in TestMain. When the plane
// cannot start (binaries missing included) the tests fail, they are not skipped.
func Main(m *testing.M, opts Options, plane **Plane) int {
	p, err := Start(context.Background(), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubetest: start the control plane:", err)
		return 1
	}
	*plane = p
	code := m.Run()
	if err := p.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "kubetest: stop the control plane:", err)
	}
	return code
}

// MainWithWrapper is Main for packages whose jobs use pvn-wrapper: it
// builds cmd/pvn-wrapper into a temporary folder put first on the node's
// PATH, before the system's tools.
func MainWithWrapper(m *testing.M, plane **Plane) int {
	binDir, err := os.MkdirTemp("", "pvnbot-wrapper-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubetest:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	build := exec.Command("go", "build", "-o", filepath.Join(binDir, "pvn-wrapper"), "github.com/pvnbot/pvnbot/cmd/pvn-wrapper")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "kubetest: build pvn-wrapper:", err)
		return 1
	}
	return Main(m, Options{NodePath: binDir + ":/usr/local/bin:/usr/bin:/bin"}, plane)
}

// Start starts a plane and returns when the apiserver is ready and the node is
// Ready. Stop it with Stop.
func Start(ctx context.Context, opts Options) (*Plane, error) {
	if opts.BinDir == "" {
		dir, err := BinDir()
		if err != nil {
			return nil, err
		}
		opts.BinDir = dir
	}
	if opts.NodePath == "" {
		opts.NodePath = "/usr/local/bin:/usr/bin:/bin"
	}
	if opts.MissingImageMarker == "" {
		opts.MissingImageMarker = "missing"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 2 * time.Minute
	}

	dir, err := os.MkdirTemp("", "pvnbot-kube-")
	if err != nil {
		return nil, fmt.Errorf("create plane dir: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p := &Plane{Dir: dir, NodeName: "pvn-node", cancel: cancel}
	startCtx, cancelStart := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancelStart()
	if err := p.start(runCtx, startCtx, opts); err != nil {
		return nil, errors.Join(err, p.Stop())
	}
	return p, nil
}

// Stop stops every component and removes the plane's folder, unless
// PVNBOT_KUBE_KEEP=1 (then it says where it is).
func (p *Plane) Stop() error {
	p.cancel()
	var errs []error
	for i := len(p.procs) - 1; i >= 0; i-- {
		if err := p.procs[i].stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if os.Getenv("PVNBOT_KUBE_KEEP") == "1" {
		fmt.Fprintln(os.Stderr, "kubetest: plane kept in", p.Dir)
	} else if err := os.RemoveAll(p.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove plane dir: %w", err))
	}
	return errors.Join(errs...)
}

// Log returns the tail of a component's log (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, pvn-nodeagent), for test failures.
func (p *Plane) Log(component string) string {
	return tail(filepath.Join(p.Dir, "logs", component+".log"), 40)
}
