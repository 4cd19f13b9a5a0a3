package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrSchemaTooNew is returned by OpenSQLite for a state file written by a
// newer pvnbot than this one.
var ErrSchemaTooNew = errors.New("state file schema is newer than this pvnbot knows")

// migration brings the schema from version i to i+1, where i is its index in
// migrations. Migrations are never edited once released: add a new one.
type migration func(ctx context.Context, tx *sql.Tx) error

var migrations = []migration{
	execAll(
		// targets: the columns mirror what people and `bot status` query;
		// data, the TargetState as JSON, is what is loaded.
		`CREATE TABLE targets (
			application     TEXT NOT NULL,
			service         TEXT NOT NULL,
			release_channel TEXT NOT NULL,
			status          TEXT NOT NULL,
			message         TEXT NOT NULL,
			commit_sha      TEXT NOT NULL,
			digest          TEXT NOT NULL,
			updated_at      TEXT,
			data            TEXT NOT NULL,
			PRIMARY KEY (application, service, release_channel)
		)`,
		// job_runs is the audit log. seq keeps insertion order; exit_code is
		// NULL while a run has no result; approved_by is a JSON array.
		`CREATE TABLE job_runs (
			seq             INTEGER PRIMARY KEY AUTOINCREMENT,
			id              TEXT NOT NULL UNIQUE,
			application     TEXT NOT NULL,
			service         TEXT NOT NULL,
			release_channel TEXT NOT NULL,
			action          TEXT NOT NULL,
			commit_sha      TEXT NOT NULL,
			digest          TEXT NOT NULL,
			desired_version TEXT NOT NULL,
			started         TEXT,
			finished        TEXT,
			exit_code       INTEGER,
			error           TEXT NOT NULL,
			output_tail     TEXT NOT NULL,
			approved_by     TEXT,
			note            TEXT NOT NULL
		)`,
		`CREATE INDEX job_runs_by_target ON job_runs (application, service, release_channel, started, seq)`,
		`CREATE INDEX job_runs_by_start ON job_runs (started, seq)`,
		`CREATE TABLE approvals (
			seq             INTEGER PRIMARY KEY AUTOINCREMENT,
			application     TEXT NOT NULL,
			service         TEXT NOT NULL,
			release_channel TEXT NOT NULL,
			digest          TEXT NOT NULL,
			commit_sha      TEXT NOT NULL,
			who             TEXT NOT NULL,
			at              TEXT,
			consumed_by     TEXT
		)`,
		`CREATE INDEX approvals_by_target ON approvals (application, service, release_channel, digest)`,
		`CREATE TABLE ingested_commits (
			seq         INTEGER PRIMARY KEY AUTOINCREMENT,
			repo        TEXT NOT NULL,
			branch      TEXT NOT NULL,
			sha         TEXT NOT NULL,
			ingested_at TEXT,
			UNIQUE (repo, branch, sha)
		)`,
		`CREATE INDEX ingested_commits_latest ON ingested_commits (repo, branch, seq)`,
		`CREATE TABLE deliveries (
			id           TEXT NOT NULL PRIMARY KEY,
			event        TEXT NOT NULL,
			payload      BLOB NOT NULL,
			received_at  TEXT,
			processed_at TEXT,
			error        TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX deliveries_pending ON deliveries (received_at) WHERE processed_at IS NULL`,
	),
	// The desired state (the rendered jobs, most of a target's row) moves
	// to desired_states, written once per desired state rather than on
	// every change of the target's convergence state. targets.data keeps
	// the rest of the TargetState; the foreign key makes sure that a
	// target never points at a desired state that is not there.
	execAll(
		`CREATE TABLE desired_states (
			application     TEXT NOT NULL,
			service         TEXT NOT NULL,
			release_channel TEXT NOT NULL,
			digest          TEXT NOT NULL,
			target          TEXT NOT NULL,
			PRIMARY KEY (application, service, release_channel, digest)
		)`,
		`INSERT INTO desired_states (application, service, release_channel, digest, target)
			SELECT application, service, release_channel, digest, json_extract(data, '$.Target') FROM targets`,
		`CREATE TABLE targets_v2 (
			application     TEXT NOT NULL,
			service         TEXT NOT NULL,
			release_channel TEXT NOT NULL,
			status          TEXT NOT NULL,
			message         TEXT NOT NULL,
			commit_sha      TEXT NOT NULL,
			digest          TEXT NOT NULL,
			updated_at      TEXT,
			data            TEXT NOT NULL,
			PRIMARY KEY (application, service, release_channel),
			FOREIGN KEY (application, service, release_channel, digest) REFERENCES desired_states
		)`,
		`INSERT INTO targets_v2 (application, service, release_channel, status, message, commit_sha, digest, updated_at, data)
			SELECT application, service, release_channel, status, message, commit_sha, digest, updated_at,
			json_remove(data, '$.Target') FROM targets`,
		`DROP TABLE targets`,
		`ALTER TABLE targets_v2 RENAME TO targets`,
	),
	// job_runs is written with every job's start and end: it keeps only the
	// indexes Run (by id) and Runs (by target) need, and seq is the rowid
	// without AUTOINCREMENT, which rewrote sqlite_sequence on every insert.
	// Rows are never deleted, so seq still follows insertion order.
	execAll(
		`CREATE TABLE job_runs_v3 (
			seq             INTEGER PRIMARY KEY,
			id              TEXT NOT NULL UNIQUE,
			application     TEXT NOT NULL,
			service         TEXT NOT NULL,
			release_channel TEXT NOT NULL,
			action          TEXT NOT NULL,
			commit_sha      TEXT NOT NULL,
			digest          TEXT NOT NULL,
			desired_version TEXT NOT NULL,
			started         TEXT,
			finished        TEXT,
			exit_code       INTEGER,
			error           TEXT NOT NULL,
			output_tail     TEXT NOT NULL,
			approved_by     TEXT,
			note            TEXT NOT NULL
		)`,
		`INSERT INTO job_runs_v3 (`+jobRunsV1Columns+`) SELECT `+jobRunsV1Columns+` FROM job_runs`,
		`DROP TABLE job_runs`,
		`ALTER TABLE job_runs_v3 RENAME TO job_runs`,
		`CREATE INDEX job_runs_by_target ON job_runs (application, service, release_channel, started, seq)`,
	),
	// Schema v4: every record belongs to one repository (SPEC §5.1). The
	// rows of a state file written before are given the repository of its
	// latest ingested commit: `bot run` serves one repository per state
	// file and names it by its path, which is what the ingest log holds.
	// Approvals get an ID (their rowid before), and where they came from.
	execAll(
		`CREATE TABLE desired_states_v4 (
			repo            TEXT NOT NULL,
			application     TEXT NOT NULL,
			service         TEXT NOT NULL,
			release_channel TEXT NOT NULL,
			digest          TEXT NOT NULL,
			target          TEXT NOT NULL,
			PRIMARY KEY (repo, application, service, release_channel, digest)
		)`,
		`INSERT INTO desired_states_v4 SELECT `+v3Repo+`, * FROM desired_states`,
		`CREATE TABLE targets_v4 (
			repo            TEXT NOT NULL,
			application     TEXT NOT NULL,
			service         TEXT NOT NULL,
			release_channel TEXT NOT NULL,
			status          TEXT NOT NULL,
			message         TEXT NOT NULL,
			commit_sha      TEXT NOT NULL,
			digest          TEXT NOT NULL,
			updated_at      TEXT,
			data            TEXT NOT NULL,
			PRIMARY KEY (repo, application, service, release_channel),
			FOREIGN KEY (repo, application, service, release_channel, digest) REFERENCES desired_states_v4
		)`,
		`INSERT INTO targets_v4 SELECT `+v3Repo+`, * FROM targets`,
		`DROP TABLE targets`,
		`DROP TABLE desired_states`,
		// Renaming the parent renames it in targets_v4's foreign key too.
		`ALTER TABLE desired_states_v4 RENAME TO desired_states`,
		`ALTER TABLE targets_v4 RENAME TO targets`,
		`ALTER TABLE job_runs ADD COLUMN repo TEXT NOT NULL DEFAULT ''`,
		`UPDATE job_runs SET repo = `+v3Repo,
		`DROP INDEX job_runs_by_target`,
		`CREATE INDEX job_runs_by_target ON job_runs (repo, application, service, release_channel, started, seq)`,
		`CREATE TABLE approvals_v4 (
			seq             INTEGER PRIMARY KEY,
			id              TEXT NOT NULL UNIQUE,
			repo            TEXT NOT NULL,
			application     TEXT NOT NULL,
			service         TEXT NOT NULL,
			release_channel TEXT NOT NULL,
			digest          TEXT NOT NULL,
			commit_sha      TEXT NOT NULL,
			who             TEXT NOT NULL,
			at              TEXT,
			source          TEXT NOT NULL,
			url             TEXT NOT NULL,
			consumed_by     TEXT
		)`,
		`INSERT INTO approvals_v4 SELECT seq, 'v3-' || seq, `+v3Repo+`, application, service, release_channel,
			digest, commit_sha, who, at, '', '', consumed_by FROM approvals`,
		`DROP TABLE approvals`,
		`ALTER TABLE approvals_v4 RENAME TO approvals`,
		`CREATE INDEX approvals_by_target ON approvals (repo, application, service, release_channel, digest)`,
		`ALTER TABLE ingested_commits ADD COLUMN problems TEXT NOT NULL DEFAULT ''`,
		// deliveries: the queue of webhook deliveries. A delivery is
		// pending until it is done or, after failing too often, failed;
		// a failed attempt sets when to try again.
		`ALTER TABLE deliveries ADD COLUMN repo TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE deliveries ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'`,
		`ALTER TABLE deliveries ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE deliveries ADD COLUMN next_attempt_at TEXT`,
		`UPDATE deliveries SET status = CASE WHEN processed_at IS NULL THEN 'pending' WHEN error = '' THEN 'done' ELSE 'failed' END`,
		`DROP INDEX deliveries_pending`,
		`CREATE INDEX deliveries_pending ON deliveries (received_at) WHERE status = 'pending'`,
		// replies: the comments pvnbot answered, so that it answers each at
		// most once, whatever the redeliveries and edits.
		`CREATE TABLE replies (
			repo       TEXT NOT NULL,
			comment_id INTEGER NOT NULL,
			at         TEXT,
			PRIMARY KEY (repo, comment_id)
		)`,
		// served_repos: the repositories bot serve serves, with what it
		// needs to reach them before GitHub is asked again.
		`CREATE TABLE served_repos (
			repo            TEXT NOT NULL PRIMARY KEY,
			full_name       TEXT NOT NULL,
			installation_id INTEGER NOT NULL,
			clone_url       TEXT NOT NULL,
			default_branch  TEXT NOT NULL,
			updated_at      TEXT
		)`,
	),
}

// v3Repo is the repository of the records of a state file from before
// schema v4: that of its latest ingested commit.
const v3Repo = `COALESCE((SELECT repo FROM ingested_commits ORDER BY seq DESC LIMIT 1), '')`

const jobRunsV1Columns = `seq, id, application, service, release_channel, action, commit_sha, digest,
	desired_version, started, finished, exit_code, error, output_tail, approved_by, note`

// SchemaVersion is the schema version this code writes.
func SchemaVersion() int { return len(migrations) }

func execAll(stmts ...string) migration {
	return func(ctx context.Context, tx *sql.Tx) error {
		for _, stmt := range stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	}
}

// migrate applies the missing migrations, each in its own transaction that
// also records the new version. BEGIN IMMEDIATE serialises processes opening
// the same file at once: each re-reads the version inside its transaction.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	for {
		done, err := migrateOne(ctx, db)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

func migrateOne(ctx context.Context, db *sql.DB) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return false, fmt.Errorf("init schema_version: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return false, fmt.Errorf("%w: version %d, this pvnbot knows up to %d; upgrade pvnbot", ErrSchemaTooNew, version, len(migrations))
	}
	if version == len(migrations) {
		return true, tx.Commit()
	}
	if err := migrations[version](ctx, tx); err != nil {
		return false, fmt.Errorf("migrate schema to version %d: %w", version+1, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, version+1); err != nil {
		return false, fmt.Errorf("record schema version %d: %w", version+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit schema version %d: %w", version+1, err)
	}
	return false, nil
}
