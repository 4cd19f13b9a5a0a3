package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/pvnbot/pvnbot/internal/server"
)

// runServe is `bot serve --config bot.yaml`: the GitHub App.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bot serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "bot.yaml", "the bot's configuration `FILE` (bot.yaml); the environment overrides its github section (GITHUB_APP_PRIVATE_KEY, GITHUB_APP_WEBHOOK_SECRET, ...)")
	resync := fs.Duration("resync", 5*time.Minute, "how often each repository's deploy branch is compared with what was deployed, and missed webhooks looked for (±10 %)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bot serve [--config bot.yaml] [--resync 5m]")
		fmt.Fprintln(stderr, "\nServes the GitHub App: webhooks at POST /api/github/hook, /healthz and /readyz on server.address:server.port.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg, err := server.LoadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "bot serve: %v\n", err)
		return 1
	}
	log := serveLogger(stderr)

	srvCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	srv, err := server.New(srvCtx, cfg, server.Options{Logger: log, ResyncInterval: *resync})
	if err != nil {
		fmt.Fprintf(stderr, "bot serve: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		fmt.Fprintf(stderr, "bot serve: listen on %s (server.address, server.port): %v\n", cfg.Addr(), err)
		return 1
	}
	httpSrv := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve HTTP", "err", err)
		}
	}()
	log.Info("listening", "addr", ln.Addr().String(), "store", cfg.StorePath)
	done := make(chan error, 1)
	go func() { done <- srv.Run(srvCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-done:
		done = nil
	}
	log.Info("stopping: no more deliveries are taken; running jobs are stopped and recorded")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = httpSrv.Shutdown(shutdown)
	cancel()
	stop()
	if done != nil {
		runErr = <-done
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "bot serve: %v\n", runErr)
		return 1
	}
	log.Info("stopped")
	return 0
}

// serveLogger logs JSON, or text on a terminal.
func serveLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if lvl := os.Getenv("PVNBOT_LOG_LEVEL"); lvl != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(lvl)); err == nil {
			opts.Level = l
		}
	}
	if isTerminal(w) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
