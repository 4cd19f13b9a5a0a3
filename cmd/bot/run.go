package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/links"
	"github.com/pvnbot/pvnbot/internal/localmode"
	"github.com/pvnbot/pvnbot/internal/metrics"
)

// runRun is `bot run --repo DIR`: the engine on a local Git repository, with
// the local process runner and a SQLite state file.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bot run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts localmode.Options
	var passEnv listFlag
	fs.StringVar(&opts.RepoDir, "repo", "", "the Git `DIR`ectory whose *.pvn.yaml configs to deploy (required)")
	fs.StringVar(&opts.Branch, "branch", "", "the branch to follow (default: the branch HEAD names)")
	fs.StringVar(&opts.StatePath, "state", "", "the state `FILE` (default: DIR/.pvnbot/pvnbot.db)")
	fs.BoolVar(&opts.Once, "once", false, "stop once every target is converged, waiting for approval or failed; exit 1 if one failed")
	fs.Var(&passEnv, "pass-env", "give jobs this `NAME`d variable of the bot's environment (repeatable)")
	fs.DurationVar(&opts.Poll, "poll", localmode.DefaultPoll, "how often to look for new commits and approvals")
	kubeconfig := fs.String("kubeconfig", "", "run the jobs of runtimes whose proxyRuntime names a context of this kubeconfig `FILE` as Kubernetes Jobs there")
	kubeContext := fs.String("context", "", "with --kubeconfig: link only this `CONTEXT` (default: every context, each under its own name)")
	kubeName := fs.String("kube-runtime", "", "with --kubeconfig: the `NAME` runtimes use for the linked context (default: the context's name)")
	botConfig := fs.String("bot-config", "", "take kubernetesRuntimes, containerRegistries and localRunner.passEnv from this bot.yaml `FILE`")
	metricsAddr := fs.String("metrics-listen", "", "serve Prometheus metrics at http://`ADDR`/metrics (host:port; port 0 picks one)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bot run --repo DIR [--branch B] [--state FILE] [--once] [--pass-env NAME]... [--poll 2s]")
		fmt.Fprintln(stderr, "               [--kubeconfig FILE [--context C] [--kube-runtime NAME]] [--bot-config bot.yaml] [--metrics-listen ADDR]")
		fmt.Fprintln(stderr, "\nDeploys each new commit of a local repository's branch with local processes, and keeps it converged.")
		fmt.Fprintln(stderr, "State is a SQLite file (WAL, synchronous=NORMAL): it survives the bot being killed at any point;")
		fmt.Fprintln(stderr, "a power loss may roll back its last transitions (never corrupt it), and the bot then repeats them.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if opts.RepoDir == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	opts.PassEnv = passEnv
	links, err := runLinks(*botConfig, *kubeconfig, *kubeContext, *kubeName)
	if err != nil {
		fmt.Fprintf(stderr, "bot run: %v\n", err)
		return 2
	}
	opts.Links = links.Links
	opts.PassEnv = append(opts.PassEnv, links.passEnv...)
	opts.Out = stdout
	opts.Terminal = isTerminal(stdout)
	if *metricsAddr != "" {
		stop, err := serveMetrics(*metricsAddr, &opts, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "bot run: --metrics-listen: %v\n", err)
			return 2
		}
		defer stop()
	}
	res, err := localmode.Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "bot run: %v\n", err)
		return 1
	}
	switch {
	case res.Interrupted:
		return 130
	case res.Failed:
		return 1
	}
	return 0
}

// serveMetrics serves opts' new Metrics at http://addr/metrics until stop.
func serveMetrics(addr string, opts *localmode.Options, stdout io.Writer) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	opts.Metrics = metrics.New()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", opts.Metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with ErrServerClosed at stop
	fmt.Fprintf(stdout, "metrics at http://%s/metrics\n", ln.Addr())
	return func() { _ = srv.Close() }, nil
}

// botRunLinks are the links of a bot run and the variables bot.yaml passes.
type botRunLinks struct {
	links.Links
	passEnv []string
}

// runLinks reads --bot-config and --kubeconfig into the clusters,
// registries and passed variables of a bot run.
func runLinks(botConfig, kubeconfig, kubeContext, kubeName string) (botRunLinks, error) {
	var out botRunLinks
	if botConfig != "" {
		bot, err := config.LoadBot(botConfig)
		if err != nil {
			return out, err
		}
		out.Links = links.FromBot(bot)
		out.passEnv = bot.LocalRunner.PassEnv
	}
	if kubeconfig == "" {
		if kubeContext != "" || kubeName != "" {
			return out, fmt.Errorf("--context and --kube-runtime go with --kubeconfig")
		}
		return out, nil
	}
	clusters, err := links.KubeconfigClusters(kubeconfig, kubeContext, kubeName)
	if err != nil {
		return out, err
	}
	for _, c := range clusters {
		for _, have := range out.Clusters {
			if have.Name == c.Name {
				return out, fmt.Errorf("kubernetes runtime %q is linked twice (--bot-config and --kubeconfig)", c.Name)
			}
		}
	}
	out.Clusters = append(out.Clusters, clusters...)
	return out, nil
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// stateOf is what --state and --repo name: the state file (--state, else
// --repo's default one) and the repository in it (--repo's; empty: the
// file's only one).
func stateOf(state, repo string) (path, name string, err error) {
	path = state
	if path == "" {
		path = localmode.DefaultStatePath(cmp.Or(repo, "."))
	}
	if repo != "" {
		if name, err = localmode.RepoName(repo); err != nil {
			return "", "", err
		}
	}
	return path, name, nil
}
