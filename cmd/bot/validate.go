package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/ingest"
	"github.com/pvnbot/pvnbot/internal/links"
)

// runValidate is `bot validate [--bot-config bot.yaml] [PATH ...]`: every
// problem as path:line:col: message (warnings as path:line:col: warning:
// message) and exit 1 when there are errors, or a one-line summary. The
// configs are loaded, validated and rendered through ingest.RenderSet, the
// path `bot run` and `bot serve` take, with placeholders for secret values.
func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bot validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	botConfig := fs.String("bot-config", "", "the bot's `bot.yaml`, to check linked Kubernetes runtimes and container registries")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bot validate [--bot-config bot.yaml] [PATH ...]")
		fmt.Fprintln(stderr, "\nValidates the *.pvn.yaml files under each PATH (a folder or a file; default .).")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	paths := fs.Args()
	if len(paths) == 0 {
		paths = []string{"."}
	}

	opts := ingest.Options{Desired: desired.Options{Secrets: links.PlaceholderSecrets}}
	if *botConfig != "" {
		bot, err := config.LoadBot(*botConfig)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		opts.Linked = bot.Linked()
		opts.Desired.Registries = links.FromBot(bot).Registries
	}

	var total summary
	failed := false
	for _, l := range groupPaths(paths) {
		set, err := l.load()
		if set == nil {
			fmt.Fprintf(stderr, "bot validate: %v\n", err)
			return 1
		}
		// Every target of every channel is rendered as bot run renders
		// it, so that what bot run would refuse is refused here.
		res, err := ingest.RenderSet(set, err, validateCommit, opts)
		if err != nil {
			fmt.Fprintf(stderr, "bot validate: %v\n", err)
			return 1
		}
		failed = failed || len(res.Problems) > 0
		if all := config.Combine(res.Problems, res.Warnings); all != nil {
			printErrors(stdout, l.display, all)
		}
		total.add(set)
	}
	if failed {
		return 1
	}
	if opts.Linked == nil {
		fmt.Fprintln(stderr, "note: linked Kubernetes runtimes and container registries were not checked (no --bot-config)")
	}
	fmt.Fprintln(stdout, total)
	return 0
}

// validateCommit stands for the commit in what bot validate renders.
const validateCommit = "0000000000000000000000000000000000000000"

// loadable is one Set to validate: a folder, or files under a common root.
type loadable struct {
	root    string
	files   []string // relative to root; nil: the whole folder
	display string   // prefix that makes reported paths valid from here
}

func (l loadable) load() (*config.Set, error) {
	if l.files == nil {
		return config.LoadDir(l.root)
	}
	return config.LoadFiles(l.root, l.files...)
}

// groupPaths makes each folder its own Set (a repository), and puts the
// files together under the current folder, or their common parent when
// they are outside it.
func groupPaths(paths []string) []loadable {
	var out []loadable
	var files []string
	for _, p := range paths {
		if info, err := os.Stat(p); err == nil && !info.IsDir() {
			files = append(files, p)
			continue
		}
		out = append(out, loadable{root: p, display: p})
	}
	if len(files) == 0 {
		return out
	}
	root, display := ".", "."
	if outside(files) {
		root = commonDir(files)
		display = root
		if rel, err := filepath.Rel(absPath("."), root); err == nil {
			display = rel
		}
	}
	l := loadable{root: root, display: display}
	for _, f := range files {
		rel, err := filepath.Rel(absPath(root), absPath(f))
		if err != nil {
			rel = f
		}
		l.files = append(l.files, rel)
	}
	return append(out, l)
}

func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func outside(files []string) bool {
	for _, f := range files {
		rel, err := filepath.Rel(absPath("."), absPath(f))
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

func commonDir(files []string) string {
	dir := filepath.Dir(absPath(files[0]))
	for _, f := range files[1:] {
		for d := filepath.Dir(absPath(f)); !within(d, dir); {
			dir = filepath.Dir(dir)
		}
	}
	return dir
}

func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// printErrors prints one problem per line, with paths made relative to the
// current folder.
func printErrors(w io.Writer, display string, err error) {
	var errs config.Errors
	if !errors.As(err, &errs) {
		fmt.Fprintln(w, err)
		return
	}
	for _, e := range errs {
		if display != "." && display != "" && e.Pos.File != "" {
			e.Pos.File = filepath.Join(display, filepath.FromSlash(e.Pos.File))
		}
		fmt.Fprintln(w, e)
	}
}

type summary struct{ runtimes, applications, services, targets, warnings int }

func (s *summary) add(set *config.Set) {
	s.runtimes += len(set.Runtimes)
	s.applications += len(set.Applications)
	s.services += len(set.Services)
	s.targets += set.Targets()
	s.warnings += len(set.Warnings)
}

func (s summary) String() string {
	parts := []string{
		plural(s.runtimes, "runtime"), plural(s.applications, "application"),
		plural(s.services, "service"), plural(s.targets, "target"),
	}
	if s.warnings > 0 {
		parts = append(parts, plural(s.warnings, "warning"))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
