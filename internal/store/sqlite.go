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
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/pvnbot/pvnbot/internal/desired"
)

// SQLite is the durable Store: one SQLite file in WAL mode, shared safely by
// several processes (`bot run` writing while `bot approve` or `bot status`
// read and write). Every write is committed before its method returns.
//
// Durability: with the default synchronous=FULL a committed write survives a
// process crash and a power loss. WithSynchronousNormal trades the latter for
// faster commits (WAL with synchronous=NORMAL survives a crash of the process,
// not of the machine: the last commits may be rolled back, never corrupted).
//
// Times come back in UTC with their nanoseconds. The file holds secret
// parameter values (they are part of the rendered jobs), so it is created
// readable by its owner only.
type SQLite struct {
	db   *sql.DB
	path string
	now  func() time.Time
	// writing holds a token while this handle writes: its goroutines queue
	// here in turn rather than poll SQLite's lock with busy-timeout sleeps.
	// Other processes still wait on busy_timeout.
	writing chan struct{}
	// batch holds the statements of SaveTargets, prepared once.
	batch struct {
		once                                  sync.Once
		target, run, desired, prune, approval *sql.Stmt
		err                                   error
	}
	// stored maps each target to the digest of the one desired state this
	// handle knows desired_states holds for it, so that a target's state is
	// saved without its desired state when that is already there.
	stored struct {
		sync.Mutex
		digest map[repoKey]string
	}
}

// repoKey is a target of one repository.
type repoKey struct {
	repo string
	desired.Key
}

var _ DB = (*SQLite)(nil)

// SQLiteRepo is one repository's records in a state file.
type SQLiteRepo struct {
	s    *SQLite
	name string
}

var _ Store = (*SQLiteRepo)(nil)

// Repo implements DB.
func (s *SQLite) Repo(name string) Store { return s.RepoOf(name) }

// RepoOf is Repo with its concrete type, for what SQLite has beyond Store.
func (s *SQLite) RepoOf(name string) *SQLiteRepo { return &SQLiteRepo{s: s, name: name} }

// Repos implements DB.
func (s *SQLite) Repos(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT repo FROM targets UNION SELECT repo FROM ingested_commits ORDER BY repo`)
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list repositories: %w", err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	return out, nil
}

// SQLiteOption tunes OpenSQLite.
type SQLiteOption func(*sqliteOptions)

type sqliteOptions struct {
	busyTimeout time.Duration
	synchronous string
	now         func() time.Time
}

// WithBusyTimeout sets how long a statement waits for another connection or
// process to release the file before failing (default 5s).
func WithBusyTimeout(d time.Duration) SQLiteOption {
	return func(o *sqliteOptions) { o.busyTimeout = d }
}

// WithSynchronousNormal commits without syncing the WAL on every
// transaction: commits stay durable across a process crash, not a power loss.
func WithSynchronousNormal() SQLiteOption {
	return func(o *sqliteOptions) { o.synchronous = "NORMAL" }
}

// WithClock sets the clock used for the times the store records itself
// (when a commit was ingested). Default time.Now.
func WithClock(now func() time.Time) SQLiteOption {
	return func(o *sqliteOptions) { o.now = now }
}

// OpenSQLite opens the state file at path, creating it and its folder when
// missing, and brings its schema up to date. A file whose schema is newer
// than this code knows is refused with an error wrapping ErrSchemaTooNew;
// a damaged one (its pages are checked: see quickCheck) with a
// *CorruptError.
func OpenSQLite(ctx context.Context, path string, opts ...SQLiteOption) (*SQLite, error) {
	o := sqliteOptions{busyTimeout: 5 * time.Second, synchronous: "FULL", now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state folder for %s: %w", path, err)
	}
	// SQLite gives the -wal and -shm files the main file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}

	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(o.busyTimeout.Milliseconds(), 10))
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", o.synchronous)
	q.Set("_foreign_keys", "1")
	// Write transactions take the write lock when they begin, so they wait
	// on busy_timeout instead of failing when a read turns into a write.
	q.Set("_txlock", "immediate")
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	// A file: URI escapes any '?' or '#' in the path.
	dsn := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}).String()

	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	s := &SQLite{db: db, path: path, now: o.now, writing: make(chan struct{}, 1)}
	s.stored.digest = make(map[repoKey]string)
	if err := s.checkJournal(ctx, o.busyTimeout); err != nil {
		_ = db.Close()
		return nil, corruptError(path, err)
	}
	if err := quickCheck(ctx, db, path); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := migrate(ctx, db); err != nil {
		_ = db.Close()
		return nil, corruptError(path, fmt.Errorf("state file %s: %w", path, err))
	}
	return s, nil
}

// checkJournal makes sure the file really is in WAL mode: SQLite falls back
// silently where WAL cannot work (some network file systems).
//
// The first connection to a new file switches it to WAL, which takes an
// exclusive lock without waiting on busy_timeout: when several processes
// open a new file at once, some are told SQLITE_BUSY. They try again, for
// as long as busy_timeout allows.
func (s *SQLite) checkJournal(ctx context.Context, busyTimeout time.Duration) error {
	var mode string
	deadline := time.Now().Add(busyTimeout)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		if err == nil {
			break
		}
		if !isBusy(err) || time.Now().Add(pause).After(deadline) {
			return fmt.Errorf("open state file %s: %w", s.path, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("open state file %s: %w", s.path, ctx.Err())
		case <-time.After(pause):
		}
	}
	if mode != "wal" {
		return fmt.Errorf("open state file %s: journal mode is %q, want wal (is it on a network file system?)", s.path, mode)
	}
	return nil
}

// Path is the state file's path.
func (s *SQLite) Path() string { return s.path }

// Close implements DB.
func (s *SQLite) Close() error {
	for _, stmt := range []*sql.Stmt{s.batch.target, s.batch.run, s.batch.desired, s.batch.prune, s.batch.approval} {
		if stmt != nil {
			_ = stmt.Close()
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state file %s: %w", s.path, err)
	}
	return nil
}

// lockWrites takes this handle's write turn; call the returned function to
// give it back.
func (s *SQLite) lockWrites(ctx context.Context) (unlock func(), err error) {
	select {
	case s.writing <- struct{}{}:
		return func() { <-s.writing }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// write runs one write statement; it is committed when write returns.
func (s *SQLite) write(ctx context.Context, query string, args ...any) (sql.Result, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.db.ExecContext(ctx, query, args...)
}

// inTx runs fn in a write transaction (BEGIN IMMEDIATE) and commits it.
func (s *SQLite) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.inTxThen(ctx, fn, nil)
}

// inTxThen is inTx that also calls committed, if not nil, once the
// transaction is committed and before the next write of this handle.
func (s *SQLite) inTxThen(ctx context.Context, fn func(tx *sql.Tx) error, committed func()) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if committed != nil {
		committed()
	}
	return nil
}

// timeLayout is fixed-width, so stored times sort as text and read well in
// sqlite3 (whose date functions accept it).
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// dbTime stores t in UTC; the zero time is NULL.
func dbTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(timeLayout)
}

func parseTime(v sql.NullString) (time.Time, error) {
	if !v.Valid {
		return time.Time{}, nil
	}
	t, err := time.Parse(timeLayout, v.String)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse stored time %q: %w", v.String, err)
	}
	return t, nil
}

// dbString stores "" as NULL.
func dbString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// RenameRepo gives every record of repository from to repository to, which
// must have none (a local repository that moved, say). It is one
// transaction.
func (s *SQLite) RenameRepo(ctx context.Context, from, to string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM targets WHERE repo = ?)
			+ (SELECT count(*) FROM ingested_commits WHERE repo = ?)`, to, to).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("repository %s has records already", to)
		}
		// The targets' foreign key is checked at the commit, once both
		// sides carry the new name.
		if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
			return err
		}
		for _, table := range []string{"targets", "desired_states", "job_runs", "approvals", "ingested_commits", "deliveries", "replies", "served_repos"} {
			if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET repo = ? WHERE repo = ?`, to, from); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rename repository %s to %s in %s: %w", from, to, s.path, err)
	}
	s.stored.Lock()
	clear(s.stored.digest)
	s.stored.Unlock()
	return nil
}

// Backup writes a consistent copy of the whole file to path (which must
// not exist), while others read and write it: SQLite's VACUUM INTO, one
// read transaction. The copy, which holds secrets as the file does, is
// made in a folder only its owner can enter and is readable by its owner
// only.
func (s *SQLite) Backup(ctx context.Context, path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("back up to %s: it exists", path)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".pvnbot-backup-")
	if err != nil {
		return fmt.Errorf("back up: %w", err)
	}
	defer os.RemoveAll(tmp)
	copyPath := filepath.Join(tmp, "backup.db")
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, copyPath); err != nil {
		return fmt.Errorf("back up to %s: %w", path, err)
	}
	if err := os.Chmod(copyPath, 0o600); err != nil {
		return fmt.Errorf("back up: %w", err)
	}
	if err := os.Link(copyPath, path); err != nil { // never replaces a file
		return fmt.Errorf("back up to %s: %w", path, err)
	}
	return nil
}
