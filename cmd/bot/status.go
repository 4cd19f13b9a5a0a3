package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/localmode"
	"github.com/pvnbot/pvnbot/internal/server"
	"github.com/pvnbot/pvnbot/internal/store"
)

// runStatus is `bot status`: every target's status from the state file of
// bot run, or from the store of bot serve (--config), as a table or JSON.
// It works while the bot runs.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bot status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", "", "the state `FILE` of bot run (default: DIR/.pvnbot/pvnbot.db)")
	repo := fs.String("repo", "", "bot run: the repository `DIR` whose default state file to read (default: .); with --config: the repository owner/name to show (default: all)")
	botConfig := fs.String("config", "", "read the store of bot serve run with this bot.yaml `FILE`")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bot status [--state FILE | --repo DIR] [--json]")
		fmt.Fprintln(stderr, "       bot status --config bot.yaml [--repo owner/name] [--json]")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if *botConfig != "" {
		if *state != "" {
			fmt.Fprintln(stderr, "bot status: --state is bot run's; with --config the store is bot.yaml's store.path")
			return 2
		}
		return servedStatus(ctx, *botConfig, *repo, *asJSON, stdout, stderr)
	}
	path, name, err := stateOf(*state, *repo)
	if err != nil {
		fmt.Fprintf(stderr, "bot status: %v\n", err)
		return 2
	}
	states, err := localmode.Status(ctx, path, name)
	if err != nil {
		fmt.Fprintf(stderr, "bot status: %v\n", err)
		return 1
	}
	if *asJSON {
		err = localmode.WriteJSON(stdout, states)
	} else {
		err = localmode.WriteTable(stdout, states)
		if err == nil {
			_, err = fmt.Fprintf(stdout, "\n%s\n", localmode.Summary(states))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "bot status: %v\n", err)
		return 1
	}
	return 0
}

// servedStatus is bot status --config: the targets of bot serve's
// repositories and its webhook queue.
func servedStatus(ctx context.Context, botYAML, repo string, asJSON bool, stdout, stderr io.Writer) int {
	bot, err := config.LoadBot(botYAML)
	if err != nil {
		fmt.Fprintf(stderr, "bot status: %v\n", err)
		return 1
	}
	repos, counts, err := server.Status(ctx, server.StorePath(botYAML, bot), repo, bot.Branches)
	if err != nil {
		fmt.Fprintf(stderr, "bot status: %v\n", err)
		return 1
	}
	if asJSON {
		err = writeServedJSON(stdout, repos, counts)
	} else {
		err = writeServedTable(stdout, repos, counts)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bot status: %v\n", err)
		return 1
	}
	return 0
}

func writeServedTable(w io.Writer, repos []server.RepoStatus, counts store.DeliveryCounts) error {
	for i, r := range repos {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s (deploys %s)\n", r.Repo.FullName, r.Branch)
		if err := localmode.WriteTable(w, r.Targets); err != nil {
			return err
		}
		fmt.Fprintf(w, "\n%s\n", localmode.Summary(r.Targets))
	}
	_, err := fmt.Fprintf(w, "\nwebhook deliveries: %s\n", queueWords(counts, time.Now()))
	return err
}

func queueWords(c store.DeliveryCounts, now time.Time) string {
	waiting := "none waiting"
	if c.Pending > 0 {
		waiting = fmt.Sprintf("%d waiting, the oldest for %s", c.Pending, now.Sub(c.OldestPending).Round(time.Second))
	}
	if c.Failed > 0 {
		return fmt.Sprintf("%s; %d given up after failing too often (kept in the store; their errors are in the log)", waiting, c.Failed)
	}
	return waiting
}

type servedJSON struct {
	Repositories []servedRepoJSON `json:"repositories"`
	Deliveries   deliveriesJSON   `json:"webhookDeliveries"`
}

type servedRepoJSON struct {
	Repository string                 `json:"repository"`
	Branch     string                 `json:"deploys"`
	Targets    []localmode.TargetJSON `json:"targets"`
}

type deliveriesJSON struct {
	Waiting       int        `json:"waiting"`
	OldestWaiting *time.Time `json:"oldestWaiting,omitempty"`
	GivenUp       int        `json:"givenUp"`
}

func writeServedJSON(w io.Writer, repos []server.RepoStatus, counts store.DeliveryCounts) error {
	out := servedJSON{Repositories: []servedRepoJSON{}, Deliveries: deliveriesJSON{Waiting: counts.Pending, GivenUp: counts.Failed}}
	if !counts.OldestPending.IsZero() {
		out.Deliveries.OldestWaiting = &counts.OldestPending
	}
	for _, r := range repos {
		out.Repositories = append(out.Repositories, servedRepoJSON{
			Repository: r.Repo.FullName, Branch: r.Branch, Targets: localmode.TargetsJSON(r.Targets),
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
