package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/google/go-github/v89/github"
	"github.com/palantir/go-githubapp/githubapp"
)

// Comment is a comment on an issue or pull request, as pvnbot needs it.
type Comment struct {
	Repo   Repo
	Action string // created, edited, deleted
	Number int    // of the issue or pull request
	IsPR   bool
	ID     int64
	URL    string // html_url
	User   string
	// UserType is GitHub's: "User", "Bot".
	UserType string
	Body     string
}

// Approver takes what people ask of pvnbot: comments, and the Approve and
// Re-run buttons of check runs.
type Approver interface {
	// Comment takes a comment on an issue or pull request.
	Comment(ctx context.Context, c Comment) error
	// CheckRunAction takes a press of a check run's button (identifier) by
	// user (of userType) on the check run name of commit sha.
	CheckRunAction(ctx context.Context, repo Repo, name, sha, identifier, user, userType string) error
	// Rerequest takes a check run's Re-run.
	Rerequest(ctx context.Context, repo Repo, name, sha string) error
}

// IssueComment handles issue_comment events.
type IssueComment struct {
	Approver Approver
	Logger   *slog.Logger
}

// Handles implements githubapp.EventHandler.
func (h *IssueComment) Handles() []string { return []string{"issue_comment"} }

// Handle implements githubapp.EventHandler.
func (h *IssueComment) Handle(ctx context.Context, _, deliveryID string, payload []byte) error {
	var e github.IssueCommentEvent
	if err := json.Unmarshal(payload, &e); err != nil {
		return Permanent(fmt.Errorf("parse issue_comment event: %w", err))
	}
	if e.GetComment().GetID() == 0 {
		return Permanent(fmt.Errorf("issue_comment event: no comment.id"))
	}
	repo, err := repoOfEvent("issue_comment", e.GetRepo(), e.GetInstallation())
	if err != nil {
		return err
	}
	c := Comment{
		Repo: repo, Action: e.GetAction(),
		Number: e.GetIssue().GetNumber(), IsPR: e.GetIssue().IsPullRequest(),
		ID: e.GetComment().GetID(), URL: e.GetComment().GetHTMLURL(), Body: e.GetComment().GetBody(),
		User: e.GetComment().GetUser().GetLogin(), UserType: e.GetComment().GetUser().GetType(),
	}
	logger(h.Logger).Debug("comment", "delivery_id", deliveryID, "repo", c.Repo.FullName, "action", c.Action)
	return h.Approver.Comment(ctx, c)
}

var _ githubapp.EventHandler = (*IssueComment)(nil)

// CheckRun handles check_run events: the Approve button (requested_action)
// and Re-run (rerequested) of pvnbot's check runs.
type CheckRun struct {
	Approver Approver
	// AppID is pvnbot's: other Apps' check runs are not its.
	AppID  int64
	Logger *slog.Logger
}

// Handles implements githubapp.EventHandler.
func (h *CheckRun) Handles() []string { return []string{"check_run"} }

// Handle implements githubapp.EventHandler.
func (h *CheckRun) Handle(ctx context.Context, _, deliveryID string, payload []byte) error {
	var e github.CheckRunEvent
	if err := json.Unmarshal(payload, &e); err != nil {
		return Permanent(fmt.Errorf("parse check_run event: %w", err))
	}
	run := e.GetCheckRun()
	log := logger(h.Logger).With("delivery_id", deliveryID, "repo", e.GetRepo().GetFullName())
	if id := run.GetApp().GetID(); h.AppID != 0 && id != 0 && id != h.AppID {
		log.Debug("check run of another App", "app_id", id)
		return nil
	}
	repo, err := repoOfEvent("check_run", e.GetRepo(), e.GetInstallation())
	if err != nil {
		return err
	}
	switch e.GetAction() {
	case "requested_action":
		return h.Approver.CheckRunAction(ctx, repo, run.GetName(), run.GetHeadSHA(),
			e.GetRequestedAction().Identifier, e.GetSender().GetLogin(), e.GetSender().GetType())
	case "rerequested":
		return h.Approver.Rerequest(ctx, repo, run.GetName(), run.GetHeadSHA())
	}
	log.Debug("check_run event ignored", "action", e.GetAction())
	return nil
}

var _ githubapp.EventHandler = (*CheckRun)(nil)

// Planner validates pull requests.
type Planner interface {
	// PullRequest takes a pull request's new head: sha, of the pull
	// request number, to merge into base.
	PullRequest(ctx context.Context, repo Repo, number int, sha, base string, fork bool) error
}

// PullRequest handles pull_request events: opened, synchronize and
// reopened are validated and planned.
type PullRequest struct {
	Planner Planner
	Logger  *slog.Logger
}

// Handles implements githubapp.EventHandler.
func (h *PullRequest) Handles() []string { return []string{"pull_request"} }

// Handle implements githubapp.EventHandler.
func (h *PullRequest) Handle(ctx context.Context, _, deliveryID string, payload []byte) error {
	var e github.PullRequestEvent
	if err := json.Unmarshal(payload, &e); err != nil {
		return Permanent(fmt.Errorf("parse pull_request event: %w", err))
	}
	switch e.GetAction() {
	case "opened", "synchronize", "reopened":
	default:
		logger(h.Logger).Debug("pull_request event ignored", "delivery_id", deliveryID, "action", e.GetAction())
		return nil
	}
	pr := e.GetPullRequest()
	fork := pr.GetHead().GetRepo().GetFullName() != "" && pr.GetHead().GetRepo().GetFullName() != e.GetRepo().GetFullName()
	repo, err := repoOfEvent("pull_request", e.GetRepo(), e.GetInstallation())
	if err != nil {
		return err
	}
	if pr.GetHead().GetSHA() == "" {
		return Permanent(fmt.Errorf("pull_request event: no pull_request.head.sha"))
	}
	return h.Planner.PullRequest(ctx, repo, e.GetNumber(), pr.GetHead().GetSHA(), pr.GetBase().GetRef(), fork)
}

var _ githubapp.EventHandler = (*PullRequest)(nil)
