package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/pvnbot/pvnbot/internal/localmode"
)

// runStatus is `bot status`: every target's status from the state file, as
// a table or JSON. It works while `bot run` runs.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bot status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", "", "the state `FILE` (default: DIR/.pvnbot/pvnbot.db)")
	repo := fs.String("repo", "", "the repository `DIR` whose default state file to read (default: .)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bot status [--state FILE | --repo DIR] [--json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
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
