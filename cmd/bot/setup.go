package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/pvnbot/pvnbot"
	"github.com/pvnbot/pvnbot/internal/setup"
)

// runSetup is `bot setup`: registers the GitHub App from app.yml through
// GitHub's App manifest flow and writes bot.yaml.
func runSetup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bot setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := setup.Config{Manifest: pvnbot.AppManifest}
	listen := fs.String("listen", "127.0.0.1:3000", "serve the setup page on this `ADDR`ess")
	fs.StringVar(&cfg.WebhookURL, "webhook-url", "", "the `URL` GitHub sends webhooks to, such as https://pvnbot.example.com/api/github/hook (required)")
	fs.StringVar(&cfg.GitHubURL, "github-url", setup.DefaultGitHubURL, "GitHub's web `URL`; a GitHub Enterprise Server's API is at URL/api/v3/")
	fs.StringVar(&cfg.Org, "org", "", "register the App under this `ORG`anization (default: your personal account)")
	fs.StringVar(&cfg.Name, "name", "", "the App's `NAME`, unique on GitHub (default: app.yml's name)")
	fs.StringVar(&cfg.Path, "config", "bot.yaml", "write the App's credentials to this `FILE`")
	fs.BoolVar(&cfg.Force, "force", false, "overwrite the config file if it exists")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bot setup --webhook-url URL [--listen 127.0.0.1:3000] [--github-url URL] [--org ORG] [--name NAME] [--config bot.yaml] [--force]")
		fmt.Fprintln(stderr, "\nRegisters pvnbot's GitHub App: open the page it serves, press the button, confirm on GitHub.")
		fmt.Fprintln(stderr, "It then writes bot.yaml (mode 0600) with the App's ID, webhook secret and private key,")
		fmt.Fprintln(stderr, "prints the link that installs the App, and exits.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if cfg.WebhookURL == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "bot setup: %v\n", err)
		return 1
	}
	defer l.Close()
	if _, err := setup.Run(ctx, l, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "bot setup: %v\n", err)
		return 1
	}
	return 0
}
