package localmode

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// makeStateDir creates the folder of the state file when missing. A folder
// it creates inside the repository gets a .gitignore of "*": it holds the
// rendered jobs, secrets included, and checkouts, never to be committed.
func makeStateDir(repoDir, statePath string) error {
	dir := filepath.Dir(statePath)
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state folder: %w", err)
	}
	if !inside(repoDir, dir) {
		return nil
	}
	ignore := filepath.Join(dir, ".gitignore")
	if err := os.WriteFile(ignore, []byte("# pvnbot's state: rendered jobs, secrets included. Never commit it.\n*\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", ignore, err)
	}
	return nil
}

func inside(root, p string) bool {
	rootAbs, err1 := filepath.Abs(root)
	pAbs, err2 := filepath.Abs(p)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(rootAbs, pAbs)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// checkEmpty looks at a state file that exists but holds nothing (0 bytes)
// before it is taken as a new database: when something shows that bot run
// used it before (checkouts beside it, a write-ahead log, the repository's
// default state file holding its history), it was truncated or replaced,
// and starting afresh would apply every target again: that is refused,
// saying so. Otherwise it is taken, with a note saying so.
func checkEmpty(repoDir, statePath string) (note string, err error) {
	info, err := os.Stat(statePath)
	if err != nil || info.Size() > 0 || !info.Mode().IsRegular() {
		return "", nil
	}
	var signs []string
	if entries, err := os.ReadDir(filepath.Join(filepath.Dir(statePath), "worktrees")); err == nil && len(entries) > 0 {
		signs = append(signs, fmt.Sprintf("%s holds the checkouts of earlier runs", filepath.Join(filepath.Dir(statePath), "worktrees")))
	}
	if wal, err := os.Stat(statePath + "-wal"); err == nil && wal.Size() > 0 {
		signs = append(signs, fmt.Sprintf("its write-ahead log %s-wal is not empty", statePath))
	}
	if def := DefaultStatePath(repoDir); !sameFile(def, statePath) {
		if d, err := os.Stat(def); err == nil && d.Size() > 0 {
			signs = append(signs, fmt.Sprintf("the repository's default state file %s holds its history", def))
		}
	}
	if len(signs) > 0 {
		return "", fmt.Errorf("state file %s is empty (0 bytes), but %s: it was truncated (a full disk?) or replaced. "+
			"Restore it from a backup; or, to start over and apply every target again, remove it (or name another with --state)",
			statePath, strings.Join(signs, ", and "))
	}
	return fmt.Sprintf("state file %s is empty: starting a new state in it", statePath), nil
}

func sameFile(a, b string) bool {
	ai, err1 := os.Stat(a)
	bi, err2 := os.Stat(b)
	if err1 != nil || err2 != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return os.SameFile(ai, bi)
}
