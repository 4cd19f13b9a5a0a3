package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// StartRun implements Store.
func (r *SQLiteRepo) StartRun(ctx context.Context, run JobRun) error {
	return r.putRun(ctx, "start", run)
}

// FinishRun implements Store.
func (r *SQLiteRepo) FinishRun(ctx context.Context, run JobRun) error {
	return r.putRun(ctx, "finish", run)
}

const upsertRun = `INSERT INTO job_runs
	(id, repo, application, service, release_channel, action, commit_sha, digest, desired_version,
	 started, finished, exit_code, error, output_tail, approved_by, note)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET
	repo = excluded.repo, application = excluded.application, service = excluded.service,
	release_channel = excluded.release_channel, action = excluded.action,
	commit_sha = excluded.commit_sha, digest = excluded.digest,
	desired_version = excluded.desired_version, started = excluded.started,
	finished = excluded.finished, exit_code = excluded.exit_code, error = excluded.error,
	output_tail = excluded.output_tail, approved_by = excluded.approved_by, note = excluded.note`

func (r *SQLiteRepo) runArgs(verb string, run JobRun) ([]any, error) {
	if run.ID == "" {
		return nil, fmt.Errorf("%s job run: empty ID", verb)
	}
	var approvedBy any
	if run.ApprovedBy != nil {
		b, err := json.Marshal(run.ApprovedBy)
		if err != nil {
			return nil, fmt.Errorf("%s job run %s: encode approvers: %w", verb, run.ID, err)
		}
		approvedBy = string(b)
	}
	var exitCode any = run.ExitCode
	if run.Finished.IsZero() && run.ExitCode == 0 {
		exitCode = nil
	}
	return []any{run.ID, r.name, run.Key.Application, run.Key.Service, run.Key.ReleaseChannel, string(run.Action),
		run.Commit, run.Digest, run.DesiredVersion, dbTime(run.Started), dbTime(run.Finished),
		exitCode, run.Error, run.OutputTail, approvedBy, run.Note}, nil
}

func (r *SQLiteRepo) putRun(ctx context.Context, verb string, run JobRun) error {
	args, err := r.runArgs(verb, run)
	if err != nil {
		return err
	}
	if _, err := r.s.write(ctx, upsertRun, args...); err != nil {
		return fmt.Errorf("%s job run %s: %w", verb, run.ID, err)
	}
	return nil
}

const runColumns = `id, application, service, release_channel, action, commit_sha, digest,
	desired_version, started, finished, exit_code, error, output_tail, approved_by, note`

// Run implements Store.
func (r *SQLiteRepo) Run(ctx context.Context, id string) (JobRun, error) {
	rows, err := r.s.db.QueryContext(ctx, `SELECT `+runColumns+` FROM job_runs WHERE id = ? AND repo = ?`, id, r.name)
	if err != nil {
		return JobRun{}, fmt.Errorf("read job run %s: %w", id, err)
	}
	runs, err := scanRuns(rows)
	if err != nil {
		return JobRun{}, fmt.Errorf("read job run %s: %w", id, err)
	}
	if len(runs) == 0 {
		return JobRun{}, fmt.Errorf("job run %s: %w", id, ErrNotFound)
	}
	return runs[0], nil
}

// Runs implements Store.
func (r *SQLiteRepo) Runs(ctx context.Context, key desired.Key, limit int) ([]JobRun, error) {
	rows, err := r.s.db.QueryContext(ctx, `SELECT `+runColumns+` FROM job_runs
		WHERE repo = ? AND application = ? AND service = ? AND release_channel = ?
		ORDER BY started DESC, seq DESC LIMIT ?`,
		r.name, key.Application, key.Service, key.ReleaseChannel, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list job runs of %s: %w", key, err)
	}
	runs, err := scanRuns(rows)
	if err != nil {
		return nil, fmt.Errorf("list job runs of %s: %w", key, err)
	}
	return runs, nil
}

// RecentRuns returns the job runs of every target, newest first (by
// Started, then insertion), at most limit of them (limit <= 0: all). It
// reads the whole audit log: no index is kept for it, to keep the writes
// of job runs cheap.
func (r *SQLiteRepo) RecentRuns(ctx context.Context, limit int) ([]JobRun, error) {
	rows, err := r.s.db.QueryContext(ctx, `SELECT `+runColumns+` FROM job_runs WHERE repo = ?
		ORDER BY started DESC, seq DESC LIMIT ?`, r.name, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list recent job runs: %w", err)
	}
	runs, err := scanRuns(rows)
	if err != nil {
		return nil, fmt.Errorf("list recent job runs: %w", err)
	}
	return runs, nil
}

// sqlLimit maps "limit <= 0: all" to SQLite's "LIMIT -1".
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}

func scanRuns(rows *sql.Rows) ([]JobRun, error) {
	defer rows.Close()
	var out []JobRun
	for rows.Next() {
		var (
			run               JobRun
			action            string
			started, finished sql.NullString
			exitCode          sql.NullInt64
			approvedBy        sql.NullString
		)
		err := rows.Scan(&run.ID, &run.Key.Application, &run.Key.Service, &run.Key.ReleaseChannel,
			&action, &run.Commit, &run.Digest, &run.DesiredVersion, &started, &finished,
			&exitCode, &run.Error, &run.OutputTail, &approvedBy, &run.Note)
		if err != nil {
			return nil, err
		}
		run.Action = runner.Action(action)
		run.ExitCode = int(exitCode.Int64)
		if run.Started, err = parseTime(started); err != nil {
			return nil, fmt.Errorf("job run %s: %w", run.ID, err)
		}
		if run.Finished, err = parseTime(finished); err != nil {
			return nil, fmt.Errorf("job run %s: %w", run.ID, err)
		}
		if approvedBy.Valid {
			if err := json.Unmarshal([]byte(approvedBy.String), &run.ApprovedBy); err != nil {
				return nil, fmt.Errorf("job run %s: decode approvers: %w", run.ID, err)
			}
		}
		out = append(out, run)
	}
	return out, rows.Err()
}

// AddApproval implements Store.
func (r *SQLiteRepo) AddApproval(ctx context.Context, a Approval) error {
	args, err := r.approvalArgs(a)
	if err != nil {
		return err
	}
	if _, err := r.s.write(ctx, upsertApproval, args...); err != nil {
		return fmt.Errorf("add approval of %s by %s: %w", a.Key, a.Who, err)
	}
	return nil
}

const approvalColumns = `a.id, a.application, a.service, a.release_channel, a.digest, a.commit_sha,
	a.who, a.at, a.source, a.url, a.consumed_by`

// Approvals implements Store. "Oldest first" is the order they were added.
func (r *SQLiteRepo) Approvals(ctx context.Context, key desired.Key, digest string) ([]Approval, error) {
	rows, err := r.s.db.QueryContext(ctx, `SELECT `+approvalColumns+` FROM approvals a
		WHERE repo = ? AND application = ? AND service = ? AND release_channel = ? AND digest = ?
		ORDER BY seq`,
		r.name, key.Application, key.Service, key.ReleaseChannel, digest)
	if err != nil {
		return nil, fmt.Errorf("list approvals of %s: %w", key, err)
	}
	out, err := scanApprovals(rows)
	if err != nil {
		return nil, fmt.Errorf("list approvals of %s: %w", key, err)
	}
	return out, nil
}

// CurrentApprovals implements Store.
func (r *SQLiteRepo) CurrentApprovals(ctx context.Context) ([]Approval, error) {
	rows, err := r.s.db.QueryContext(ctx, `SELECT `+approvalColumns+` FROM approvals a
		JOIN targets t USING (repo, application, service, release_channel, digest, commit_sha)
		WHERE a.repo = ? ORDER BY a.seq`, r.name)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	out, err := scanApprovals(rows)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	return out, nil
}

func scanApprovals(rows *sql.Rows) ([]Approval, error) {
	defer rows.Close()
	var out []Approval
	for rows.Next() {
		var a Approval
		var at, consumedBy sql.NullString
		err := rows.Scan(&a.ID, &a.Key.Application, &a.Key.Service, &a.Key.ReleaseChannel, &a.Digest, &a.Commit,
			&a.Who, &at, &a.Source, &a.URL, &consumedBy)
		if err != nil {
			return nil, err
		}
		if a.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("approval %s: %w", a.ID, err)
		}
		a.ConsumedBy = consumedBy.String
		out = append(out, a)
	}
	return out, rows.Err()
}
