package server

import (
	"context"
	"fmt"

	"github.com/pvnbot/pvnbot/internal/checks"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/ingest"
	"github.com/pvnbot/pvnbot/internal/webhook"
)

// PullRequest implements webhook.Planner: a pull request into the deploy
// branch, from the repository or a fork, gets the check run pvnbot:
// validate on its head: its config problems annotated, or the plan of what
// it changes against the deploy branch's head. Nothing of it runs: its
// configs are rendered, never executed.
func (s *Server) PullRequest(ctx context.Context, r webhook.Repo, number int, sha, base string, fork bool) error {
	svc, err := s.serve(ctx, s.metaOf(r))
	if err != nil {
		return err
	}
	branch := s.branch(svc.meta)
	log := withDelivery(ctx, svc.log).With("commit", sha, "pull", number)
	if base != branch {
		log.Debug("pull request ignored: not into the deploy branch", "base", base)
		return nil
	}
	head, err := s.render(ctx, svc, sha)
	if err != nil {
		return err
	}
	plan := checks.Plan{Branch: branch, Targets: head.Targets}
	if len(head.Problems) == 0 {
		client, err := s.installationClient(svc.meta.InstallationID)
		if err != nil {
			return err
		}
		b, _, err := client.Repositories.GetBranch(ctx, svc.owner, svc.name, branch, 0)
		if err != nil {
			return fmt.Errorf("read branch %s: %w", branch, err)
		}
		plan.Base = b.GetCommit().GetSHA()
		deployed, err := s.render(ctx, svc, plan.Base)
		if err != nil {
			return err
		}
		plan.Changes = desired.Diff(deployed.Targets, head.Targets)
	}
	svc.reporter.ReportValidation(sha, head.Problems, head.Warnings, plan)
	log.Info("pull request validated", "fork", fork, "problems", len(head.Problems),
		"changed", len(plan.Changes.Changed), "added", len(plan.Changes.Added), "removed", len(plan.Changes.Removed))
	return nil
}

// render fetches a commit into the mirror and renders its configs, as an
// ingest would but with placeholder secrets, without handing them to the
// engine.
func (s *Server) render(ctx context.Context, svc *repoService, sha string) (ingest.Result, error) {
	token, err := s.token(ctx, svc.meta.InstallationID)
	if err != nil {
		return ingest.Result{}, err
	}
	git, err := s.mirror.Sync(ctx, svc.meta.CloneURL, sha, token)
	if err != nil {
		return ingest.Result{}, fmt.Errorf("fetch %s: %w", sha, err)
	}
	tree, err := git.FS(sha)
	if err != nil {
		return ingest.Result{}, fmt.Errorf("read commit %s: %w", sha, err)
	}
	return ingest.Render(tree, sha, s.links.PlanOptions())
}
