package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"

	"github.com/pvnbot/pvnbot/internal/localmode"
	"github.com/pvnbot/pvnbot/internal/reconcile"
)

// runApprove is `bot approve <application> <channel> [service...]`: approve
// the targets of a release channel that wait for a manual approval.
func runApprove(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bot approve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", "", "the state `FILE` (default: DIR/.pvnbot/pvnbot.db)")
	repo := fs.String("repo", "", "the repository `DIR` whose default state file to use (default: .)")
	who := fs.String("as", currentUser(), "who approves")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bot approve [--state FILE | --repo DIR] [--as NAME] <application> <channel> [service ...]")
		fmt.Fprintln(stderr, "\nApproves the targets of a release channel waiting for a manual approval (all, or the services named).")
		fmt.Fprintln(stderr, "The approval is stored at once; a running bot run takes it within its --poll interval.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return 2
	}
	if *who == "" {
		fmt.Fprintln(stderr, "bot approve: who approves? use --as NAME ($USER is not set)")
		return 2
	}
	path, name, err := stateOf(*state, *repo)
	if err != nil {
		fmt.Fprintf(stderr, "bot approve: %v\n", err)
		return 2
	}
	req := reconcile.ApprovalRequest{Application: fs.Arg(0), ReleaseChannel: fs.Arg(1), Services: fs.Args()[2:], Who: *who}
	res, err := localmode.Approve(ctx, localmode.ApproveOptions{StatePath: path, Repo: name, Request: req})
	for _, k := range res.Approved {
		fmt.Fprintf(stdout, "approved %s as %s\n", k, *who)
	}
	var refused *localmode.RefusedError
	switch {
	case errors.As(err, &refused):
		fmt.Fprintf(stderr, "bot approve: refused: %s\n", refused.Reason)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "bot approve: %v\n", err)
		return 1
	}
	return 0
}

// currentUser is $USER, else the name of the process's user.
func currentUser() string {
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}
