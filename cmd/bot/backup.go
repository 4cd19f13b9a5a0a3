package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/server"
	"github.com/pvnbot/pvnbot/internal/store"
)

// runBackup is `bot backup --config bot.yaml FILE`: a consistent copy of
// bot serve's store, taken while it runs; FILE - writes it to stdout (for
// kubectl exec on an image without a shell).
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bot backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	botConfig := fs.String("config", "bot.yaml", "the bot.yaml `FILE` of bot serve, whose store.path to copy")
	state := fs.String("state", "", "copy this state `FILE` of bot run instead")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bot backup [--config bot.yaml | --state FILE] OUT")
		fmt.Fprintln(stderr, "\nWrites a consistent copy of the store to OUT (a new file, mode 0600; - for stdout) while the bot runs.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	path := *state
	if path == "" {
		bot, err := config.LoadBot(*botConfig)
		if err != nil {
			fmt.Fprintf(stderr, "bot backup: %v\n", err)
			return 1
		}
		path = server.StorePath(*botConfig, bot)
	}
	if err := backup(ctx, path, fs.Arg(0), stdout); err != nil {
		fmt.Fprintf(stderr, "bot backup: %v\n", err)
		return 1
	}
	return 0
}

func backup(ctx context.Context, path, out string, stdout io.Writer) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no store to back up: %w", err)
	}
	db, err := store.OpenSQLiteReadOnly(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	if out != "-" {
		if _, err := os.Stat(filepath.Dir(out)); err != nil {
			return fmt.Errorf("back up to %s: %w", out, err)
		}
		return db.Backup(ctx, out)
	}
	tmp, err := os.MkdirTemp("", "pvnbot-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	copyPath := filepath.Join(tmp, "backup.db")
	if err := db.Backup(ctx, copyPath); err != nil {
		return err
	}
	f, err := os.Open(copyPath)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(stdout, f)
	return err
}
