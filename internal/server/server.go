package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v89/github"
	"github.com/palantir/go-githubapp/githubapp"

	"github.com/pvnbot/pvnbot/internal/approval"
	"github.com/pvnbot/pvnbot/internal/clock"
	"github.com/pvnbot/pvnbot/internal/gitrepo"
	"github.com/pvnbot/pvnbot/internal/links"
	"github.com/pvnbot/pvnbot/internal/metrics"
	"github.com/pvnbot/pvnbot/internal/runner/kube"
	"github.com/pvnbot/pvnbot/internal/store"
	"github.com/pvnbot/pvnbot/internal/webhook"
)

// Options wire a Server beyond its Config.
type Options struct {
	// Links are the clusters and registries runtimes may name; default:
	// those of bot.yaml.
	Links *links.Links
	// ResyncInterval is how often each repository's deploy branch is
	// compared with what was ingested, and missed webhooks are looked
	// for; ±10 % jitter. Default 5m.
	ResyncInterval time.Duration
	// ProgressInterval is how long a check run's progress waits between
	// writes (checks.Options); default checks' 10 s.
	ProgressInterval time.Duration
	Queue            webhook.QueueOptions
	Clock            clock.Clock
	Logger           *slog.Logger
	// Metrics collects what /metrics serves; default: new ones. A Metrics
	// serves one Server.
	Metrics *metrics.Metrics
}

// Server is bot serve.
type Server struct {
	cfg     Config
	opts    Options
	db      *store.SQLite
	creator githubapp.ClientCreator
	key     []byte
	host    string // of the web URL: how repositories are named in the store
	mirror  *gitrepo.Mirror
	kube    *kube.Runner
	links   links.Links
	clock   clock.Clock
	log     *slog.Logger
	queue   *webhook.Queue
	gate    *approval.Gate
	metrics *metrics.Metrics
	hook    http.Handler
	dir     string // beside the store: mirrors and checkouts
	ready   atomic.Bool

	serving sync.Mutex // held while a repository starts or stops being served

	mu     sync.Mutex
	runCtx context.Context // of Run: repositories served from then on run in it
	repos  map[string]*repoService
	tokens map[int64]*ghinstallation.Transport
	asked  map[string]time.Time // redeliveries asked for, by delivery GUID
	wg     sync.WaitGroup       // the repositories' goroutines
}

// New opens the store and wires the server; Run serves.
func New(ctx context.Context, cfg Config, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = 5 * time.Minute
	}
	s := &Server{
		cfg: cfg, opts: opts, clock: opts.Clock, log: opts.Logger, key: []byte(cfg.GitHub.App.PrivateKey),
		repos: map[string]*repoService{}, tokens: map[int64]*ghinstallation.Transport{}, asked: map[string]time.Time{},
	}
	if s.clock == nil {
		s.clock = clock.Real{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.metrics = opts.Metrics
	if s.metrics == nil {
		s.metrics = metrics.New()
	}
	if opts.Links != nil {
		s.links = *opts.Links
	} else {
		s.links = links.FromBot(cfg.Bot)
	}
	web, err := url.Parse(cfg.GitHub.WebURL)
	if err != nil {
		return nil, fmt.Errorf("github.webUrl: %w", err)
	}
	s.host = web.Host
	s.creator, err = githubapp.NewDefaultCachingClientCreator(cfg.GitHub, githubapp.WithClientUserAgent("pvnbot"),
		githubapp.WithClientTimeout(30*time.Second), s.metrics.ClientMiddleware())
	if err != nil {
		return nil, fmt.Errorf("GitHub clients: %w", err)
	}
	if s.kube, err = s.links.KubeRunner(s.log); err != nil {
		return nil, err
	}
	s.db, err = store.OpenSQLite(ctx, cfg.StorePath)
	if err != nil {
		return nil, err
	}
	s.dir = filepath.Join(filepath.Dir(cfg.StorePath), "pvnbot-work")
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("create work folder: %w", err)
	}
	s.mirror = gitrepo.NewMirror(filepath.Join(s.dir, "mirrors"))
	qopts := opts.Queue
	qopts.Clock, qopts.Logger, qopts.Observe = s.clock, s.log, s.metrics.Delivery
	s.gate = approval.NewGate(roles{s}, s.clock)
	s.queue = webhook.NewQueue(s.db, qopts,
		&webhook.Push{Deployer: s, Logger: s.log},
		&webhook.Installation{Deployer: s, Logger: s.log},
		&webhook.IssueComment{Approver: s, Logger: s.log},
		&webhook.CheckRun{Approver: s, AppID: cfg.GitHub.App.IntegrationID, Logger: s.log},
		&webhook.PullRequest{Planner: s, Logger: s.log},
	)
	s.hook = githubapp.NewEventDispatcher(s.queue.Handlers(), cfg.GitHub.App.WebhookSecret,
		githubapp.WithScheduler(s.queue), githubapp.WithErrorCallback(s.hookError))
	s.metrics.Events(s.queue.Events()...)
	s.metrics.Register(metrics.Targets(s.snapshot), metrics.Queue(func() (store.DeliveryCounts, error) {
		return s.db.CountDeliveries(context.Background())
	}, s.clock.Now))
	return s, nil
}

// withDelivery is log with the delivery_id of the delivery ctx processes,
// if any.
func withDelivery(ctx context.Context, log *slog.Logger) *slog.Logger {
	if id := webhook.DeliveryID(ctx); id != "" {
		return log.With("delivery_id", id)
	}
	return log
}

// snapshot is every served repository's targets, for the metrics.
func (s *Server) snapshot() map[string][]store.TargetState {
	s.mu.Lock()
	repos := make([]*repoService, 0, len(s.repos))
	for _, svc := range s.repos {
		repos = append(repos, svc)
	}
	s.mu.Unlock()
	out := make(map[string][]store.TargetState, len(repos))
	for _, svc := range repos {
		out[svc.owner+"/"+svc.name] = svc.engine.Snapshot()
	}
	return out
}

// hookError answers a webhook that was not taken: 400 for a bad signature
// or a missing header (logged without the body), 500 when it could not be
// stored (GitHub then lists it as failed, to be redelivered).
func (s *Server) hookError(w http.ResponseWriter, r *http.Request, err error) {
	log := s.log.With("delivery_id", r.Header.Get("X-GitHub-Delivery"), "event", r.Header.Get("X-GitHub-Event"))
	var ve githubapp.ValidationError
	if errors.As(err, &ve) {
		s.metrics.Refused(r.Header.Get("X-GitHub-Event")) // the sender's word: not a label as it is
		log.Warn("webhook refused: invalid signature or headers", "err", ve.Cause, "remote", r.RemoteAddr)
		http.Error(w, "Invalid webhook headers or payload", http.StatusBadRequest)
		return
	}
	log.Error("webhook not stored", "err", err)
	http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
}

// Handler serves POST /api/github/hook, /healthz and /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST "+githubapp.DefaultWebhookRoute, http.MaxBytesHandler(s.hook, 25<<20))
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "starting: the store is being resumed", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Ready reports whether the store is open and its repositories resumed.
func (s *Server) Ready() bool { return s.ready.Load() }

// Wait returns once no delivery is queued or being processed, or ctx is
// done.
func (s *Server) Wait(ctx context.Context) error { return s.queue.Wait(ctx) }

// Store is the server's store.
func (s *Server) Store() *store.SQLite { return s.db }

// Run serves until ctx is done: it resumes the repositories of the store,
// processes deliveries, and resyncs. On return every job was stopped or let
// finish and recorded, as `bot run` does, and the store is closed.
func (s *Server) Run(ctx context.Context) error {
	defer s.db.Close()
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()
	served, err := s.db.ServedRepos(ctx)
	if err != nil {
		return err
	}
	for _, r := range served {
		if _, err := s.serve(ctx, r); err != nil {
			s.log.Error("resume repository", "repo", r.Repo, "err", err)
		}
	}
	queueDone := make(chan error, 1)
	go func() { queueDone <- s.queue.Run(ctx) }()
	s.ready.Store(true)
	s.log.Info("serving", "repos", len(served))

	s.recover(ctx, true)
	s.resyncLoop(ctx)

	s.ready.Store(false)
	qerr := <-queueDone
	s.wg.Wait() // engines stopped (jobs recorded), reporters flushed
	return qerr
}

// installationClient is a GitHub client acting as an installation.
func (s *Server) installationClient(id int64) (*github.Client, error) {
	c, err := s.creator.NewInstallationClient(id)
	if err != nil {
		return nil, fmt.Errorf("GitHub client of installation %d: %w", id, err)
	}
	return c, nil
}

// token is an installation token, for fetching with git.
func (s *Server) token(ctx context.Context, installationID int64) (string, error) {
	s.mu.Lock()
	tr := s.tokens[installationID]
	if tr == nil {
		var err error
		tr, err = ghinstallation.New(http.DefaultTransport, s.cfg.GitHub.App.IntegrationID, installationID, s.key)
		if err != nil {
			s.mu.Unlock()
			return "", fmt.Errorf("installation %d: %w", installationID, err)
		}
		tr.BaseURL = strings.TrimSuffix(s.cfg.GitHub.V3APIURL, "/")
		s.tokens[installationID] = tr
	}
	s.mu.Unlock()
	token, err := tr.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("token of installation %d: %w", installationID, err)
	}
	return token, nil
}

// repoName is how the store names a repository: github.com/acme/deploys.
func (s *Server) repoName(fullName string) string { return s.host + "/" + fullName }
