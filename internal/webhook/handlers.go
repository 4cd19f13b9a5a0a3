package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/go-github/v89/github"
	"github.com/palantir/go-githubapp/githubapp"
)

// Repo is a repository as a webhook names it.
type Repo struct {
	FullName       string // owner/name
	InstallationID int64
	CloneURL       string
	DefaultBranch  string
}

// eventRepo is an event's repository: *github.Repository, or a push's
// *github.PushEventRepository.
type eventRepo interface {
	GetFullName() string
	GetCloneURL() string
	GetDefaultBranch() string
}

// repoOfEvent is the repository an event is about. An event that names no
// owner/name repository or no installation cannot be processed, ever.
func repoOfEvent(event string, r eventRepo, inst *github.Installation) (Repo, error) {
	repo := Repo{
		FullName: r.GetFullName(), InstallationID: inst.GetID(), CloneURL: r.GetCloneURL(), DefaultBranch: r.GetDefaultBranch(),
	}
	if owner, name, ok := strings.Cut(repo.FullName, "/"); !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return Repo{}, Permanent(fmt.Errorf("%s event: repository.full_name %q is not owner/name", event, repo.FullName))
	}
	if repo.InstallationID == 0 {
		return Repo{}, Permanent(fmt.Errorf("%s event: no installation.id", event))
	}
	return repo, nil
}

// Deployer is what the handlers hand events to: the bot serving the
// installations' repositories.
type Deployer interface {
	// Push takes the new head sha of a branch of repo.
	Push(ctx context.Context, repo Repo, branch, sha string) error
	// AddRepos starts serving repositories of an installation.
	AddRepos(ctx context.Context, installationID int64, fullNames []string) error
	// RemoveRepos stops serving repositories; an empty list is every
	// repository of the installation (it was uninstalled).
	RemoveRepos(ctx context.Context, installationID int64, fullNames []string) error
}

// zeroSHA is the after of a push that deleted its branch.
const zeroSHA = "0000000000000000000000000000000000000000"

// Push handles push events: a new head of a branch goes to the Deployer;
// tags and deleted branches are not pvnbot's.
type Push struct {
	Deployer Deployer
	Logger   *slog.Logger
}

// Handles implements githubapp.EventHandler.
func (h *Push) Handles() []string { return []string{"push"} }

// Handle implements githubapp.EventHandler.
func (h *Push) Handle(ctx context.Context, _, deliveryID string, payload []byte) error {
	var e github.PushEvent
	if err := json.Unmarshal(payload, &e); err != nil {
		return Permanent(fmt.Errorf("parse push event: %w", err))
	}
	r := e.GetRepo()
	log := logger(h.Logger).With("delivery_id", deliveryID, "repo", r.GetFullName())
	branch, isBranch := strings.CutPrefix(e.GetRef(), "refs/heads/")
	switch {
	case !isBranch:
		log.Debug("push ignored: not a branch", "ref", e.GetRef())
		return nil
	case e.GetDeleted() || e.GetAfter() == zeroSHA:
		log.Debug("push ignored: branch deleted", "ref", e.GetRef())
		return nil
	}
	repo, err := repoOfEvent("push", r, e.GetInstallation())
	if err != nil {
		return err
	}
	return h.Deployer.Push(ctx, repo, branch, e.GetAfter())
}

var _ githubapp.EventHandler = (*Push)(nil)

// Installation handles installation and installation_repositories events,
// which GitHub sends to every App: they keep the set of repositories
// served.
type Installation struct {
	Deployer Deployer
	Logger   *slog.Logger
}

// Handles implements githubapp.EventHandler.
func (h *Installation) Handles() []string {
	return []string{"installation", "installation_repositories"}
}

// Handle implements githubapp.EventHandler.
func (h *Installation) Handle(ctx context.Context, event, deliveryID string, payload []byte) error {
	log := logger(h.Logger).With("delivery_id", deliveryID)
	if event == "installation" {
		var e github.InstallationEvent
		if err := json.Unmarshal(payload, &e); err != nil {
			return Permanent(fmt.Errorf("parse installation event: %w", err))
		}
		id := e.GetInstallation().GetID()
		switch e.GetAction() {
		case "created", "new_permissions_accepted", "unsuspend":
			return h.Deployer.AddRepos(ctx, id, names(e.Repositories))
		case "deleted", "suspend":
			return h.Deployer.RemoveRepos(ctx, id, nil)
		}
		log.Debug("installation event ignored", "action", e.GetAction())
		return nil
	}
	var e github.InstallationRepositoriesEvent
	if err := json.Unmarshal(payload, &e); err != nil {
		return Permanent(fmt.Errorf("parse installation_repositories event: %w", err))
	}
	id := e.GetInstallation().GetID()
	if added := names(e.RepositoriesAdded); len(added) > 0 {
		if err := h.Deployer.AddRepos(ctx, id, added); err != nil {
			return err
		}
	}
	if removed := names(e.RepositoriesRemoved); len(removed) > 0 {
		return h.Deployer.RemoveRepos(ctx, id, removed)
	}
	return nil
}

var _ githubapp.EventHandler = (*Installation)(nil)

func names(repos []*github.Repository) []string {
	out := make([]string, 0, len(repos))
	for _, r := range repos {
		if n := r.GetFullName(); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
