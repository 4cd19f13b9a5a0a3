// Command bot is pvnbot: a GitOps bot that keeps custom runtimes converged
// from a Git repository of *.pvn.yaml files.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// command runs one subcommand with its arguments (the subcommand's name
// excluded) and returns the process exit code.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands are the subcommands of bot. Each lives in its own file,
// cmd/bot/<name>.go; adding one is one line here.
var commands = map[string]command{
	"validate": {"check *.pvn.yaml configs and print every problem", runValidate},
	"run":      {"deploy a local repository's branch with local processes (the embedded default)", runRun},
	"status":   {"print every target's status, from bot run's state file or bot serve's store", runStatus},
	"backup":   {"copy the store (or a state file) while the bot runs", runBackup},
	"approve":  {"approve a release channel's targets waiting for manual approval", runApprove},
	"serve":    {"serve the GitHub App: webhooks, check runs, every installed repository", runServe},
	"setup":    {"register the GitHub App from app.yml and write bot.yaml", runSetup},
	"schema":   {"print the JSON Schema of *.pvn.yaml documents, for editors", runSchema},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand: exit 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "bot: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

// parseFlags parses a command's flags; when the command should stop there
// it returns false and the exit code: 0 after -h, 2 after a bad flag (the
// flag set printed why).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

func usage(w io.Writer) {
	names := make([]string, 0, len(commands))
	width := 0
	for name := range commands {
		names = append(names, name)
		width = max(width, len(name))
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("usage: bot <command> [flags] [args]\n\ncommands:\n")
	for _, name := range names {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, name, commands[name].summary)
	}
	b.WriteString("\nRun bot <command> -h for a command's flags.\n")
	io.WriteString(w, b.String())
}
