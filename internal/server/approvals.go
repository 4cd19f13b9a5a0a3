package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-github/v89/github"

	"github.com/pvnbot/pvnbot/internal/approval"
	"github.com/pvnbot/pvnbot/internal/checks"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/store"
	"github.com/pvnbot/pvnbot/internal/webhook"
)

// Approvals come from comments on the pull request whose merge produced the
// waiting commit, and from the Approve button of a channel's check run;
// both pass the same gate (SPEC §3.3, §5). An accepted approval gets a +1
// reaction; a refused one, one reply saying why.

// roles reads role_name with go-github, for the gate.
type roles struct{ s *Server }

func (r roles) RoleName(ctx context.Context, owner, repo, login string) (string, error) {
	s := r.s
	svc := s.served(owner + "/" + repo)
	if svc == nil {
		return "", fmt.Errorf("%s/%s is not served", owner, repo)
	}
	client, err := s.installationClient(svc.meta.InstallationID)
	if err != nil {
		return "", err
	}
	p, resp, err := client.Repositories.GetPermissionLevel(ctx, owner, repo, login)
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return "none", nil
	}
	if err != nil {
		return "", err
	}
	return p.GetRoleName(), nil
}

// served is the service of a repository by its full name, or nil.
func (s *Server) served(fullName string) *repoService {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repos[s.repoName(fullName)]
}

// Comment implements webhook.Approver.
func (s *Server) Comment(ctx context.Context, c webhook.Comment) error {
	cmd := approval.Parse(c.Body)
	if cmd.Kind == approval.Ignore || c.Action == "deleted" {
		return nil
	}
	svc := s.served(c.Repo.FullName)
	if svc == nil {
		s.log.Info("comment on a repository not served", "repo", c.Repo.FullName)
		return nil
	}
	log := withDelivery(ctx, svc.log).With("comment_id", c.ID, "user", c.User)
	switch {
	case c.Action != "created":
		if cmd.Kind != approval.Approve {
			return nil
		}
		return s.refuse(ctx, svc, c, "edited", "edited comments never approve: write the approval in a new comment.")
	case cmd.Kind == approval.Reply:
		return s.replyOnce(ctx, svc, c, cmd.Reply)
	case !c.IsPR:
		return s.refuse(ctx, svc, c, "not_pull_request", "approvals are given on the pull request whose merge produced the commit waiting for approval, not on an issue.")
	}
	client, err := s.installationClient(svc.meta.InstallationID)
	if err != nil {
		return err
	}
	pr, _, err := client.PullRequests.Get(ctx, svc.owner, svc.name, c.Number)
	if err != nil {
		return fmt.Errorf("read pull request #%d: %w", c.Number, err)
	}
	merge := pr.GetMergeCommitSHA()
	if !pr.GetMerged() || merge == "" {
		return s.refuse(ctx, svc, c, "not_merged", fmt.Sprintf("#%d is not merged: an approval is for the commit its merge deploys.", c.Number))
	}
	if reason, err := s.gate.Check(ctx, svc.owner, svc.name, approval.Person{Login: c.User, Type: c.UserType}); err != nil {
		return err
	} else if reason != "" {
		log.Info("approval refused", "reason", reason)
		return s.refuse(ctx, svc, c, "not_allowed", reason)
	}
	if done, err := s.approvedBy(ctx, svc, c.URL); err != nil {
		return err
	} else if done {
		return s.react(ctx, svc, c)
	}
	approved, refusal := s.approve(ctx, svc, cmd, reconcile.ApprovalRequest{
		Who: c.User, Source: "comment", URL: c.URL, Commit: merge,
	}, fmt.Sprintf("#%d's merge commit %s", c.Number, short(merge)))
	if refusal != "" {
		log.Info("approval refused", "reason", refusal)
		return s.refuse(ctx, svc, c, "nothing_to_approve", refusal)
	}
	log.Info("approval accepted", "targets", len(approved), "commit", merge)
	s.metrics.Approval("")
	return s.react(ctx, svc, c)
}

// refuse answers an approval that was not taken, once, and counts it once
// answered.
func (s *Server) refuse(ctx context.Context, svc *repoService, c webhook.Comment, code, text string) error {
	answered, err := s.reply(ctx, svc, c, text)
	if answered {
		s.metrics.Approval(code)
	}
	return err
}

// approve records the approval of cmd's release channel (or the only one
// waiting) in every application with targets of req.Commit there. It
// returns what it approved, or the reason it approved nothing.
func (s *Server) approve(ctx context.Context, svc *repoService, cmd approval.Command, req reconcile.ApprovalRequest, what string) ([]desired.Key, string) {
	states := svc.engine.Snapshot()
	waiting := map[string][]string{} // channel → applications with targets of the commit waiting for approval
	atCommit := map[string][]string{}
	known := map[string]bool{}
	for _, st := range states {
		if st.Status == store.StatusDeleted {
			continue
		}
		k := st.Key()
		known[k.ReleaseChannel] = true
		if st.Target.Commit != req.Commit {
			continue
		}
		atCommit[k.ReleaseChannel] = appendNew(atCommit[k.ReleaseChannel], k.Application)
		if st.Status == store.StatusWaitingManualApproval || (st.Status == store.StatusWaitingPreconditions && st.Target.NeedsApproval()) {
			waiting[k.ReleaseChannel] = appendNew(waiting[k.ReleaseChannel], k.Application)
		}
	}
	channel := cmd.Channel
	switch {
	case len(atCommit) == 0:
		return nil, fmt.Sprintf("nothing of %s is the desired state: a later commit replaced it, or it is not deployed.", what)
	case channel == "" && len(waiting) == 1:
		for ch := range waiting {
			channel = ch
		}
	case channel == "" && len(waiting) == 0:
		return nil, fmt.Sprintf("nothing of %s waits for approval.", what)
	case channel == "":
		names := slices.Sorted(maps.Keys(waiting))
		return nil, fmt.Sprintf("several release channels of %s wait for approval (%s): name one, as in `/approve %s`.",
			what, strings.Join(names, ", "), names[0])
	case !known[channel]:
		return nil, fmt.Sprintf("there is no release channel %q (release channels: %s).", channel, strings.Join(slices.Sorted(maps.Keys(atCommit)), ", "))
	case len(atCommit[channel]) == 0:
		return nil, fmt.Sprintf("release channel %s has no target whose desired state is %s: a later commit's is.", channel, what)
	}
	var approved []desired.Key
	var reasons []string
	for _, app := range atCommit[channel] {
		r := req
		r.Application, r.ReleaseChannel, r.Services = app, channel, cmd.Services
		keys, err := svc.engine.Approve(ctx, r)
		var refused *reconcile.RefusedError
		switch {
		case errors.As(err, &refused):
			reasons = append(reasons, refused.Reason)
		case err != nil:
			reasons = append(reasons, "the approval could not be recorded; try again.")
			svc.log.Error("record approval", "err", err)
		}
		approved = append(approved, keys...)
	}
	if len(approved) == 0 {
		return nil, strings.Join(reasons, " ")
	}
	return approved, ""
}

// approvedBy reports whether the approval at url was recorded already (a
// retried webhook).
func (s *Server) approvedBy(ctx context.Context, svc *repoService, url string) (bool, error) {
	approvals, err := svc.store.CurrentApprovals(ctx)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(approvals, func(a store.Approval) bool { return a.URL != "" && a.URL == url }), nil
}

// react gives an accepted approval its +1 (GitHub keeps one per person).
func (s *Server) react(ctx context.Context, svc *repoService, c webhook.Comment) error {
	client, err := s.installationClient(svc.meta.InstallationID)
	if err != nil {
		return err
	}
	if _, _, err := client.Reactions.CreateIssueCommentReaction(ctx, svc.owner, svc.name, c.ID, "+1"); err != nil {
		return fmt.Errorf("react to comment %d: %w", c.ID, err)
	}
	return nil
}

// replyOnce answers a comment, at most once whatever the redeliveries and
// edits: the reply is claimed in the store before it is posted.
func (s *Server) replyOnce(ctx context.Context, svc *repoService, c webhook.Comment, text string) error {
	_, err := s.reply(ctx, svc, c, text)
	return err
}

// reply is replyOnce, saying whether this call answered.
func (s *Server) reply(ctx context.Context, svc *repoService, c webhook.Comment, text string) (answered bool, err error) {
	claimed, err := s.db.ClaimReply(ctx, svc.meta.Repo, c.ID, s.clock.Now())
	if err != nil || !claimed {
		return false, err
	}
	mention := "@" + c.User
	if !strings.HasPrefix(text, mention+" ") { // the gate's reasons name whom they refuse
		text = mention + " " + text
	}
	if err := s.comment(ctx, svc, c.Number, text); err != nil {
		if rerr := s.db.ReleaseReply(context.WithoutCancel(ctx), svc.meta.Repo, c.ID); rerr != nil {
			return false, errors.Join(err, rerr)
		}
		return false, err
	}
	return true, nil
}

func (s *Server) comment(ctx context.Context, svc *repoService, number int, body string) error {
	client, err := s.installationClient(svc.meta.InstallationID)
	if err != nil {
		return err
	}
	if _, _, err := client.Issues.CreateComment(ctx, svc.owner, svc.name, number, &github.IssueComment{Body: github.Ptr(body)}); err != nil {
		return fmt.Errorf("comment on #%d: %w", number, err)
	}
	return nil
}

// channelOf reads "pvnbot: <application>/<channel>".
func channelOf(checkName string) (app, channel string, ok bool) {
	rest, ok := strings.CutPrefix(checkName, checks.CheckNamePrefix)
	if !ok {
		return "", "", false
	}
	app, channel, ok = strings.Cut(rest, "/")
	return app, channel, ok && app != "" && channel != ""
}

// CheckRunAction implements webhook.Approver: the Approve button of a
// channel's check run approves its targets of that commit, for whoever
// passes the gate; a refusal is answered on the commit's pull request.
func (s *Server) CheckRunAction(ctx context.Context, r webhook.Repo, name, sha, identifier, user, userType string) error {
	app, channel, ok := channelOf(name)
	svc := s.served(r.FullName)
	if !ok || identifier != "approve" || svc == nil {
		return nil
	}
	log := withDelivery(ctx, svc.log).With("user", user, "commit", sha)
	reason, err := s.gate.Check(ctx, svc.owner, svc.name, approval.Person{Login: user, Type: userType})
	if err != nil {
		return err
	}
	code := "not_allowed"
	if reason == "" {
		code = "nothing_to_approve"
		keys, err := svc.engine.Approve(ctx, reconcile.ApprovalRequest{
			Application: app, ReleaseChannel: channel, Who: user, Source: "button", Commit: sha,
		})
		var refused *reconcile.RefusedError
		switch {
		case errors.As(err, &refused):
			reason = refused.Reason
		case err != nil:
			return err
		default:
			log.Info("approval accepted", "targets", len(keys), "source", "button")
			s.metrics.Approval("")
			return nil
		}
	}
	log.Info("approval refused", "reason", reason, "source", "button")
	number, err := s.pullOf(ctx, svc, sha)
	if err == nil && number != 0 {
		err = s.comment(ctx, svc, number, fmt.Sprintf("@%s the Approve button of %s: %s", user, name, reason))
	}
	if err == nil { // else the delivery is tried again, and counted then
		s.metrics.Approval(code)
	}
	return err
}

// pullOf is the pull request whose merge produced sha, 0 if none.
func (s *Server) pullOf(ctx context.Context, svc *repoService, sha string) (int, error) {
	client, err := s.installationClient(svc.meta.InstallationID)
	if err != nil {
		return 0, err
	}
	prs, _, err := client.PullRequests.ListPullRequestsWithCommit(ctx, svc.owner, svc.name, sha, nil)
	if err != nil {
		return 0, fmt.Errorf("pull requests of %s: %w", short(sha), err)
	}
	for _, pr := range prs {
		if pr.GetMergeCommitSHA() == sha {
			return pr.GetNumber(), nil
		}
	}
	return 0, nil
}

// Rerequest implements webhook.Approver: Re-run on a channel's check run
// makes its targets step now, and shows the result in a new check run.
func (s *Server) Rerequest(ctx context.Context, r webhook.Repo, name, sha string) error {
	app, channel, ok := channelOf(name)
	svc := s.served(r.FullName)
	if !ok || svc == nil {
		return nil
	}
	var keys []desired.Key
	for _, st := range svc.engine.Snapshot() {
		if k := st.Key(); k.Application == app && k.ReleaseChannel == channel && st.Status != store.StatusDeleted {
			keys = append(keys, k)
		}
	}
	svc.reporter.Rerun(app, channel)
	withDelivery(ctx, svc.log).Info("re-run requested", "commit", sha, "channel", app+"/"+channel, "targets", len(keys))
	return svc.engine.Recheck(ctx, keys...)
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
