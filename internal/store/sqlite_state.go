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
func (s *SQLite) StartRun(ctx context.Context, run JobRun) error {
	return s.putRun(ctx, "start", run)
}

// FinishRun implements Store.
func (s *SQLite) FinishRun(ctx context.Context, run JobRun) error {
	return s.putRun(ctx, "finish", run)
}

const upsertRun = `INSERT INTO job_runs
	(id, application, service, release_channel, action, commit_sha, digest, desired_version,
	 started, finished, exit_code, error, output_tail, approved_by, note)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET
	application = excluded.application, service = excluded.service,
	release_channel = excluded.release_channel, action = excluded.action,
	commit_sha = excluded.commit_sha, digest = excluded.digest,
	desired_version = excluded.desired_version, started = excluded.started,
	finished = excluded.finished, exit_code = excluded.exit_code, error = excluded.error,
	output_tail = excluded.output_tail, approved_by = excluded.approved_by, note = excluded.note`

func runArgs(verb string, run JobRun) ([]any, error) {
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
	return []any{run.ID, run.Key.Application, run.Key.Service, run.Key.ReleaseChannel, string(run.Action),
		run.Commit, run.Digest, run.DesiredVersion, dbTime(run.Started), dbTime(run.Finished),
		exitCode, run.Error, run.OutputTail, approvedBy, run.Note}, nil
}

func (s *SQLite) putRun(ctx context.Context, verb string, run JobRun) error {
	args, err := runArgs(verb, run)
	if err != nil {
		return err
	}
	if _, err := s.write(ctx, upsertRun, args...); err != nil {
		return fmt.Errorf("%s job run %s: %w", verb, run.ID, err)
	}
	return nil
}

const runColumns = `id, application, service, release_channel, action, commit_sha, digest,
	desired_version, started, finished, exit_code, error, output_tail, approved_by, note`

// Run implements Store.
func (s *SQLite) Run(ctx context.Context, id string) (JobRun, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+runColumns+` FROM job_runs WHERE id = ?`, id)
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
func (s *SQLite) Runs(ctx context.Context, key desired.Key, limit int) ([]JobRun, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+runColumns+` FROM job_runs
		WHERE application = ? AND service = ? AND release_channel = ?
		ORDER BY started DESC, seq DESC LIMIT ?`,
		key.Application, key.Service, key.ReleaseChannel, sqlLimit(limit))
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
func (s *SQLite) RecentRuns(ctx context.Context, limit int) ([]JobRun, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+runColumns+` FROM job_runs
		ORDER BY started DESC, seq DESC LIMIT ?`, sqlLimit(limit))
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
func (s *SQLite) AddApproval(ctx context.Context, a Approval) error {
	_, err := s.write(ctx, `INSERT INTO approvals
		(application, service, release_channel, digest, commit_sha, who, at, consumed_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		a.Key.Application, a.Key.Service, a.Key.ReleaseChannel, a.Digest, a.Commit, a.Who,
		dbTime(a.At), dbString(a.ConsumedBy))
	if err != nil {
		return fmt.Errorf("add approval of %s by %s: %w", a.Key, a.Who, err)
	}
	return nil
}

// Approvals implements Store. "Oldest first" is the order they were added.
func (s *SQLite) Approvals(ctx context.Context, key desired.Key, digest string) ([]Approval, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT commit_sha, who, at, consumed_by FROM approvals
		WHERE application = ? AND service = ? AND release_channel = ? AND digest = ?
		ORDER BY seq`,
		key.Application, key.Service, key.ReleaseChannel, digest)
	if err != nil {
		return nil, fmt.Errorf("list approvals of %s: %w", key, err)
	}
	defer rows.Close()
	var out []Approval
	for rows.Next() {
		a := Approval{Key: key, Digest: digest}
		var at, consumedBy sql.NullString
		if err := rows.Scan(&a.Commit, &a.Who, &at, &consumedBy); err != nil {
			return nil, fmt.Errorf("list approvals of %s: %w", key, err)
		}
		if a.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("approval of %s by %s: %w", key, a.Who, err)
		}
		a.ConsumedBy = consumedBy.String
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list approvals of %s: %w", key, err)
	}
	return out, nil
}

// ConsumeApprovals implements Store.
func (s *SQLite) ConsumeApprovals(ctx context.Context, key desired.Key, digest, runID string) error {
	if runID == "" {
		return fmt.Errorf("consume approvals of %s: empty run ID", key)
	}
	_, err := s.write(ctx, `UPDATE approvals SET consumed_by = ?
		WHERE application = ? AND service = ? AND release_channel = ? AND digest = ?
		AND consumed_by IS NULL`,
		runID, key.Application, key.Service, key.ReleaseChannel, digest)
	if err != nil {
		return fmt.Errorf("consume approvals of %s for run %s: %w", key, runID, err)
	}
	return nil
}
