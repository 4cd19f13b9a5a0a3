package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// OpenSQLiteReadOnly opens the state file at path for reading only: it
// creates nothing, changes nothing (no migration: a file of an older schema
// is refused, saying how to upgrade it), and works on a read-only file
// system, where SQLite cannot make the -shm file that WAL readers share:
// there it reads the file as immutable, which is safe since nobody can
// write it. A damaged file is refused with a *CorruptError.
func OpenSQLiteReadOnly(ctx context.Context, path string, opts ...SQLiteOption) (*SQLite, error) {
	o := sqliteOptions{busyTimeout: 5 * time.Second, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if info, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	} else if info.Size() == 0 {
		return nil, fmt.Errorf("open state file %s: it is empty: nothing has been recorded in it", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	open := func(immutable bool) (*sql.DB, error) {
		q := url.Values{}
		q.Set("mode", "ro")
		if immutable {
			q.Set("immutable", "1")
		}
		q.Set("_busy_timeout", strconv.FormatInt(o.busyTimeout.Milliseconds(), 10))
		dsn := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}).String()
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, err
		}
		if err := checkVersion(ctx, db); err != nil {
			_ = db.Close()
			return nil, err
		}
		return db, nil
	}
	db, err := open(false)
	if err != nil && !IsCorrupt(err) && !errors.Is(err, ErrSchemaTooNew) && !writable(filepath.Dir(abs)) {
		db, err = open(true)
	}
	if err != nil {
		return nil, corruptError(path, fmt.Errorf("open state file %s: %w", path, err))
	}
	if err := quickCheck(ctx, db, path); err != nil {
		_ = db.Close()
		return nil, err
	}
	s := &SQLite{db: db, path: path, now: o.now, writing: make(chan struct{}, 1)}
	s.stored.digest = make(map[repoKey]string)
	return s, nil
}

// writable reports whether this process may create files in dir.
func writable(dir string) bool {
	return syscall.Access(dir, 2 /* W_OK */) == nil
}

// checkVersion refuses a schema this code cannot read as it is.
func checkVersion(ctx context.Context, db *sql.DB) error {
	var version int
	err := db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		version = 0
	case err != nil:
		return fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case version > len(migrations):
		return fmt.Errorf("%w: version %d, this pvnbot knows up to %d; upgrade pvnbot", ErrSchemaTooNew, version, len(migrations))
	case version < len(migrations):
		return fmt.Errorf("schema version %d was written by an older pvnbot: run bot run (or bot approve) once to upgrade it", version)
	}
	return nil
}
