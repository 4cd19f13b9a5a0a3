package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ServedRepo is a repository bot serve serves: its name in the store
// (github.com/acme/deploys), GitHub's full name, its installation, where to
// fetch it and its default branch.
type ServedRepo struct {
	Repo           string
	FullName       string
	InstallationID int64
	CloneURL       string
	DefaultBranch  string
	UpdatedAt      time.Time
}

// SaveServedRepo records a served repository, or updates it.
func (s *SQLite) SaveServedRepo(ctx context.Context, r ServedRepo) error {
	_, err := s.write(ctx, `INSERT INTO served_repos (repo, full_name, installation_id, clone_url, default_branch, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (repo) DO UPDATE SET full_name = excluded.full_name,
		installation_id = excluded.installation_id, clone_url = excluded.clone_url,
		default_branch = excluded.default_branch, updated_at = excluded.updated_at`,
		r.Repo, r.FullName, r.InstallationID, r.CloneURL, r.DefaultBranch, dbTime(r.UpdatedAt))
	if err != nil {
		return fmt.Errorf("save served repository %s: %w", r.Repo, err)
	}
	return nil
}

// RemoveServedRepo forgets a served repository (its records stay).
func (s *SQLite) RemoveServedRepo(ctx context.Context, repo string) error {
	if _, err := s.write(ctx, `DELETE FROM served_repos WHERE repo = ?`, repo); err != nil {
		return fmt.Errorf("remove served repository %s: %w", repo, err)
	}
	return nil
}

// ServedRepos lists the served repositories by name.
func (s *SQLite) ServedRepos(ctx context.Context) ([]ServedRepo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT repo, full_name, installation_id, clone_url, default_branch, updated_at
		FROM served_repos ORDER BY repo`)
	if err != nil {
		return nil, fmt.Errorf("list served repositories: %w", err)
	}
	defer rows.Close()
	var out []ServedRepo
	for rows.Next() {
		var r ServedRepo
		var at sql.NullString
		if err := rows.Scan(&r.Repo, &r.FullName, &r.InstallationID, &r.CloneURL, &r.DefaultBranch, &at); err != nil {
			return nil, fmt.Errorf("list served repositories: %w", err)
		}
		if r.UpdatedAt, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("served repository %s: %w", r.Repo, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list served repositories: %w", err)
	}
	return out, nil
}

// ClaimReply records that pvnbot answers comment commentID of repo, before
// it does; false when it did (or started to) already. Release it when the
// answer could not be posted.
func (s *SQLite) ClaimReply(ctx context.Context, repo string, commentID int64, at time.Time) (bool, error) {
	res, err := s.write(ctx, `INSERT INTO replies (repo, comment_id, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		repo, commentID, dbTime(at))
	if err != nil {
		return false, fmt.Errorf("record the reply to comment %d of %s: %w", commentID, repo, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record the reply to comment %d of %s: %w", commentID, repo, err)
	}
	return n == 1, nil
}

// ReleaseReply undoes ClaimReply, for an answer that could not be posted.
func (s *SQLite) ReleaseReply(ctx context.Context, repo string, commentID int64) error {
	if _, err := s.write(ctx, `DELETE FROM replies WHERE repo = ? AND comment_id = ?`, repo, commentID); err != nil {
		return fmt.Errorf("forget the reply to comment %d of %s: %w", commentID, repo, err)
	}
	return nil
}
