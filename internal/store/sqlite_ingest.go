package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// IngestCommit implements Store. Sequence numbers increase across all
// repositories and branches of the file.
func (r *SQLiteRepo) IngestCommit(ctx context.Context, branch, sha, problems string) (seq int64, err error) {
	s, repo := r.s, r.name
	if sha == "" {
		return 0, fmt.Errorf("ingest commit of %s@%s: empty sha", repo, branch)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT seq FROM ingested_commits
			WHERE repo = ? AND branch = ? AND sha = ?`, repo, branch, sha).Scan(&seq)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO ingested_commits (repo, branch, sha, ingested_at, problems)
			VALUES (?, ?, ?, ?, ?)`, repo, branch, sha, dbTime(s.now()), problems)
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

// LastIngested implements Store.
func (r *SQLiteRepo) LastIngested(ctx context.Context, branch string) (sha string, seq int64, err error) {
	repo := r.name
	err = r.s.db.QueryRowContext(ctx, `SELECT sha, seq FROM ingested_commits
		WHERE repo = ? AND branch = ? ORDER BY seq DESC LIMIT 1`, repo, branch).Scan(&sha, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, fmt.Errorf("last ingested commit of %s@%s: %w", repo, branch, ErrNotFound)
	}
	if err != nil {
		return "", 0, fmt.Errorf("last ingested commit of %s@%s: %w", repo, branch, err)
	}
	return sha, seq, nil
}
