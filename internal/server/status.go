package server

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/pvnbot/pvnbot/internal/store"
)

// RepoStatus is a served repository's targets, as bot status shows them.
type RepoStatus struct {
	Repo    store.ServedRepo
	Branch  string // the branch it deploys
	Targets []store.TargetState
}

// Status reads bot serve's store at path, while it runs or not: the
// targets of each served repository, or of the one named owner/name, and
// the webhook deliveries waiting or given up. branches is bot.yaml's.
func Status(ctx context.Context, path, fullName string, branches []string) ([]RepoStatus, store.DeliveryCounts, error) {
	var counts store.DeliveryCounts
	if _, err := os.Stat(path); err != nil {
		return nil, counts, fmt.Errorf("no store at %s: has bot serve run with this bot.yaml? (%w)", path, err)
	}
	db, err := store.OpenSQLiteReadOnly(ctx, path)
	if err != nil {
		return nil, counts, err
	}
	defer db.Close()
	served, err := db.ServedRepos(ctx)
	if err != nil {
		return nil, counts, err
	}
	var out []RepoStatus
	names := make([]string, 0, len(served))
	for _, sr := range served {
		names = append(names, sr.FullName)
		if fullName != "" && !strings.EqualFold(sr.FullName, fullName) {
			continue
		}
		states, err := db.Repo(sr.Repo).LoadTargets(ctx)
		if err != nil {
			return nil, counts, err
		}
		out = append(out, RepoStatus{Repo: sr, Branch: deployBranch(branches, sr), Targets: states})
	}
	switch {
	case len(served) == 0:
		return nil, counts, fmt.Errorf("%s serves no repository yet: is the App installed on one?", path)
	case len(out) == 0:
		return nil, counts, fmt.Errorf("bot serve does not serve %s (it serves %s)", fullName, strings.Join(names, ", "))
	}
	counts, err = db.CountDeliveries(ctx)
	return out, counts, err
}
