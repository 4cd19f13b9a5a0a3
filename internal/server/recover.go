package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/google/go-github/v89/github"

	"github.com/pvnbot/pvnbot/internal/store"
)

// Nothing is missed for ever: GitHub never redelivers a webhook by itself,
// so each resync round (and the start) compares each repository's deploy
// branch with what was ingested, takes the installations' repositories
// again, and asks GitHub to redeliver the failed deliveries the store never
// saw.

// redeliveryWindow is how far back failed deliveries are looked for:
// GitHub keeps them 3 days (7 on GitHub Enterprise Server).
const redeliveryWindow = 72 * time.Hour

// maxRedeliveries bounds the redeliveries asked for in one round.
const maxRedeliveries = 100

// resyncLoop runs a round every ResyncInterval, ±10 %, until ctx is done.
func (s *Server) resyncLoop(ctx context.Context) {
	for {
		d := s.opts.ResyncInterval
		d += time.Duration((rand.Float64()*0.2 - 0.1) * float64(d))
		tick := make(chan struct{})
		timer := s.clock.AfterFunc(d, func() { close(tick) })
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-tick:
		}
		s.recover(ctx, false)
	}
}

// recover is one round: repositories, deploy branches, missed deliveries.
func (s *Server) recover(ctx context.Context, atStart bool) {
	if err := s.syncInstallations(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("list the App's installations and repositories", "err", err)
	}
	s.mu.Lock()
	var repos []*repoService
	for _, svc := range s.repos {
		repos = append(repos, svc)
	}
	s.mu.Unlock()
	for _, svc := range repos {
		if err := s.resyncRepo(ctx, svc); err != nil && ctx.Err() == nil {
			svc.log.Error("resync", "err", err)
		}
	}
	if err := s.redeliverMissed(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("look for missed webhook deliveries", "err", err)
	}
	if atStart {
		s.log.Info("caught up with GitHub", "repos", len(repos))
	}
}

// syncInstallations serves every repository of every installation, and
// stops serving those no installation holds any more. Nothing is stopped
// unless every listing succeeded.
func (s *Server) syncInstallations(ctx context.Context) error {
	app, err := s.creator.NewAppClient()
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	var metas []store.ServedRepo
	opts := &github.ListOptions{PerPage: 100}
	for {
		insts, resp, err := app.Apps.ListInstallations(ctx, opts)
		if err != nil {
			return fmt.Errorf("list installations: %w", err)
		}
		for _, inst := range insts {
			repos, err := s.installationRepos(ctx, inst.GetID())
			if err != nil {
				return err
			}
			for _, r := range repos {
				m := store.ServedRepo{
					Repo: s.repoName(r.GetFullName()), FullName: r.GetFullName(), InstallationID: inst.GetID(),
					CloneURL: r.GetCloneURL(), DefaultBranch: r.GetDefaultBranch(),
				}
				listed[m.Repo] = true
				metas = append(metas, m)
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	var errs []error
	for _, m := range metas {
		if _, err := s.serve(ctx, m); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	var gone []*repoService
	for name, svc := range s.repos {
		if !listed[name] {
			gone = append(gone, svc)
		}
	}
	s.mu.Unlock()
	for _, svc := range gone {
		s.retire(ctx, svc, "repository removed from the pvnbot App: no longer reconciled")
	}
	return errors.Join(errs...)
}

func (s *Server) installationRepos(ctx context.Context, id int64) ([]*github.Repository, error) {
	client, err := s.installationClient(id)
	if err != nil {
		return nil, err
	}
	var out []*github.Repository
	opts := &github.ListOptions{PerPage: 100}
	for {
		list, resp, err := client.Apps.ListRepos(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list the repositories of installation %d: %w", id, err)
		}
		out = append(out, list.Repositories...)
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// resyncRepo ingests the head of a repository's deploy branch when it is
// not what was ingested last (a push webhook that never came).
func (s *Server) resyncRepo(ctx context.Context, svc *repoService) error {
	client, err := s.installationClient(svc.meta.InstallationID)
	if err != nil {
		return err
	}
	branch := s.branch(svc.meta)
	b, resp, err := client.Repositories.GetBranch(ctx, svc.owner, svc.name, branch, 0)
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		svc.log.Debug("resync: the deploy branch does not exist", "branch", branch)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read branch %s: %w", branch, err)
	}
	return s.sync(ctx, svc, branch, b.GetCommit().GetSHA())
}

// redeliverMissed asks GitHub to redeliver, once per process, each
// delivery of the last three days that failed every time it was sent and
// that the store never recorded: one sent while the bot was down, or lost
// before it was stored.
func (s *Server) redeliverMissed(ctx context.Context) error {
	app, err := s.creator.NewAppClient()
	if err != nil {
		return err
	}
	since := s.clock.Now().Add(-redeliveryWindow)
	type attempts struct {
		latest int64
		ok     bool
	}
	byGUID := map[string]*attempts{}
	var order []string
	opts := &github.ListCursorOptions{PerPage: 100}
list:
	for {
		page, resp, err := app.Apps.ListHookDeliveries(ctx, opts)
		if err != nil {
			return fmt.Errorf("list webhook deliveries: %w", err)
		}
		for _, d := range page {
			if d.GetDeliveredAt().Before(since) {
				break list // newest first
			}
			a := byGUID[d.GetGUID()]
			if a == nil {
				a = &attempts{latest: d.GetID()}
				byGUID[d.GetGUID()] = a
				order = append(order, d.GetGUID())
			}
			code := d.GetStatusCode()
			a.ok = a.ok || (code >= 200 && code < 300)
		}
		if resp.Cursor == "" || len(page) == 0 {
			break
		}
		opts.Cursor = resp.Cursor
	}
	var failed []string
	s.mu.Lock()
	for _, guid := range order {
		if !byGUID[guid].ok && s.asked[guid].IsZero() {
			failed = append(failed, guid)
		}
	}
	s.mu.Unlock()
	if len(failed) == 0 {
		return nil
	}
	known, err := s.db.KnownDeliveries(ctx, failed)
	if err != nil {
		return err
	}
	asked := 0
	for _, guid := range failed {
		if known[guid] || asked == maxRedeliveries {
			continue
		}
		_, _, err := app.Apps.RedeliverHookDelivery(ctx, byGUID[guid].latest)
		var accepted *github.AcceptedError
		if err != nil && !errors.As(err, &accepted) {
			return fmt.Errorf("redeliver %s: %w", guid, err)
		}
		asked++
		s.mu.Lock()
		s.asked[guid] = s.clock.Now()
		s.mu.Unlock()
		s.log.Info("asked GitHub to redeliver a missed webhook", "delivery_id", guid)
	}
	return nil
}
