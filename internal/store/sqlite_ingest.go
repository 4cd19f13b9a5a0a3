package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// IngestCommit records that commit sha of repo's branch was ingested and
// returns its sequence number. Sequence numbers increase with every commit
// ingested, across all repositories and branches, and are never reused.
// Ingesting a sha already recorded for that repo and branch returns its
// first sequence number and changes nothing: in particular a branch reset to
// an older commit does not move the cursor LastIngested reports.
func (s *SQLite) IngestCommit(ctx context.Context, repo, branch, sha string) (seq int64, err error) {
	if sha == "" {
		return 0, fmt.Errorf("ingest commit of %s@%s: empty sha", repo, branch)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT seq FROM ingested_commits
			WHERE repo = ? AND branch = ? AND sha = ?`, repo, branch, sha).Scan(&seq)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO ingested_commits (repo, branch, sha, ingested_at)
			VALUES (?, ?, ?, ?)`, repo, branch, sha, dbTime(s.now()))
		if err != nil {
			return err
		}
		seq, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("ingest commit %s of %s@%s: %w", sha, repo, branch, err)
	}
	return seq, nil
}

// LastIngested returns the commit of repo's branch ingested last and its
// sequence number, or ErrNotFound when none was.
func (s *SQLite) LastIngested(ctx context.Context, repo, branch string) (sha string, seq int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT sha, seq FROM ingested_commits
		WHERE repo = ? AND branch = ? ORDER BY seq DESC LIMIT 1`, repo, branch).Scan(&sha, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, fmt.Errorf("last ingested commit of %s@%s: %w", repo, branch, ErrNotFound)
	}
	if err != nil {
		return "", 0, fmt.Errorf("last ingested commit of %s@%s: %w", repo, branch, err)
	}
	return sha, seq, nil
}
