package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrCorrupt is a state file whose content is damaged: SQLite found
// malformed pages, or it is not a database at all. Nothing fixes that by
// trying again.
var ErrCorrupt = errors.New("state file is damaged")

// CorruptError is a damaged state file, with what to do about it.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state file %s is damaged (%v): check it with `sqlite3 %s \"PRAGMA integrity_check\"`, "+
		"then restore it from a backup, or start over with another state file (bot run --state FILE; every target then applies again)",
		e.Path, e.Err, e.Path)
}

func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// IsCorrupt reports whether err says a state file is damaged.
func IsCorrupt(err error) bool {
	if errors.Is(err, ErrCorrupt) {
		return true
	}
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() & 0xff {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}

// Corrupt turns an error that says the file is damaged into a
// *CorruptError naming it; other errors are returned as they are.
func (s *SQLite) Corrupt(err error) error {
	return corruptError(s.path, err)
}

func corruptError(path string, err error) error {
	var ce *CorruptError
	if err == nil || !IsCorrupt(err) || errors.As(err, &ce) {
		return err
	}
	return &CorruptError{Path: path, Err: err}
}

// fullCheckBytes is the largest file checked whole when it is opened:
// PRAGMA quick_check reads every page, about 1 ms per MB from the page
// cache (135 MB: 0.1 s; integrity_check is 5 times slower).
const fullCheckBytes = 64 << 20

// logTables grow without bound (the audit log, the deliveries): in a file
// too large to check whole, their damage shows when they are used.
var logTables = map[string]bool{"job_runs": true, "deliveries": true}

// quickCheck looks for damaged pages when the file is opened, so that a
// damaged file is refused at once, naming what to do, rather than failing
// every few seconds: the whole file when it is small, else every table but
// the logs.
func quickCheck(ctx context.Context, db *sql.DB, path string) error {
	var size int64
	if info, err := os.Stat(path); err == nil {
		size = info.Size()
	}
	var checks []string
	if size <= fullCheckBytes {
		checks = []string{"PRAGMA quick_check(1)"}
	} else {
		rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table'`)
		if err != nil {
			return corruptError(path, fmt.Errorf("read the schema: %w", err))
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return corruptError(path, err)
			}
			if !logTables[name] {
				checks = append(checks, fmt.Sprintf("PRAGMA quick_check(%q)", name))
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return corruptError(path, err)
		}
	}
	for _, q := range checks {
		var res string
		if err := db.QueryRowContext(ctx, q).Scan(&res); err != nil {
			return corruptError(path, fmt.Errorf("check for damaged pages: %w", err))
		}
		if res != "ok" {
			return &CorruptError{Path: path, Err: errors.New(res)}
		}
	}
	return nil
}
