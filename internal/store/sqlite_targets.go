package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/pvnbot/pvnbot/internal/desired"
)

// A target's row holds its TargetState without the desired.Target, which
// is most of its size and changes only with a new desired state: that is in
// desired_states, keyed by the target and its digest, written once. Each
// target keeps only the desired state it points at.

// stateRow is how a TargetState is encoded in targets.data: its Target,
// at a shallower depth, hides TargetState.Target from encoding/json.
type stateRow struct {
	TargetState
	Target *struct{} `json:",omitempty"`
}

// LoadTargets implements Store.
func (r *SQLiteRepo) LoadTargets(ctx context.Context) ([]TargetState, error) {
	s := r.s
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM targets WHERE repo = ?`, r.name).Scan(&n); err != nil {
		return nil, fmt.Errorf("count targets: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT t.application, t.service, t.release_channel, t.digest, t.data, d.target
		FROM targets t LEFT JOIN desired_states d USING (repo, application, service, release_channel, digest)
		WHERE t.repo = ?`, r.name)
	if err != nil {
		return nil, fmt.Errorf("load targets: %w", err)
	}
	defer rows.Close()
	out := make([]TargetState, 0, n)
	// Valid until Next: decoded in place, not copied.
	var app, service, channel, digest, data, target sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&app, &service, &channel, &digest, &data, &target); err != nil {
			return nil, fmt.Errorf("load targets: %w", err)
		}
		key := func() string { return string(app) + "/" + string(service) + "/" + string(channel) }
		if target == nil {
			return nil, fmt.Errorf("load target %s: its desired state %s is missing", key(), digest)
		}
		var row stateRow
		if err := json.Unmarshal(data, &row); err != nil {
			return nil, fmt.Errorf("decode target %s: %w", key(), err)
		}
		st := row.TargetState
		st.Target = desired.Target{}
		if err := json.Unmarshal(target, &st.Target); err != nil {
			return nil, fmt.Errorf("decode desired state %s of target %s: %w", digest, key(), err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load targets: %w", err)
	}
	s.stored.Lock()
	for _, st := range out {
		if k := r.key(st.Key()); s.stored.digest[k] == "" {
			s.stored.digest[k] = st.Target.Digest
		}
	}
	s.stored.Unlock()
	return out, nil
}

func (r *SQLiteRepo) key(k desired.Key) repoKey { return repoKey{repo: r.name, Key: k} }

const (
	upsertTarget = `INSERT INTO targets
	(repo, application, service, release_channel, status, message, commit_sha, digest, updated_at, data)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (repo, application, service, release_channel) DO UPDATE SET
	status = excluded.status, message = excluded.message, commit_sha = excluded.commit_sha,
	digest = excluded.digest, updated_at = excluded.updated_at, data = excluded.data`
	insertDesired = `INSERT OR IGNORE INTO desired_states
	(repo, application, service, release_channel, digest, target) VALUES (?, ?, ?, ?, ?, ?)`
	// pruneDesired deletes the desired states of a target other than the
	// one it points at.
	pruneDesired = `DELETE FROM desired_states
	WHERE repo = ? AND application = ? AND service = ? AND release_channel = ? AND digest <> ?`
	// upsertApproval inserts an approval, or records its consumption.
	upsertApproval = `INSERT INTO approvals
	(id, repo, application, service, release_channel, digest, commit_sha, who, at, source, url, consumed_by)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET consumed_by = excluded.consumed_by`
)

func (r *SQLiteRepo) targetArgs(st TargetState) ([]any, error) {
	data, err := json.Marshal(stateRow{TargetState: st})
	if err != nil {
		return nil, fmt.Errorf("encode target %s: %w", st.Key(), err)
	}
	k := st.Key()
	return []any{r.name, k.Application, k.Service, k.ReleaseChannel, string(st.Status), st.Message,
		st.Target.Commit, st.Target.Digest, dbTime(st.UpdatedAt), string(data)}, nil
}

func (r *SQLiteRepo) desiredArgs(t desired.Target) ([]any, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode desired state %s of target %s: %w", t.Digest, t.Key, err)
	}
	return []any{r.name, t.Application, t.Service, t.ReleaseChannel, t.Digest, string(data)}, nil
}

func (r *SQLiteRepo) approvalArgs(a Approval) ([]any, error) {
	if a.ID == "" {
		return nil, fmt.Errorf("save approval of %s by %s: empty ID", a.Key, a.Who)
	}
	return []any{a.ID, r.name, a.Key.Application, a.Key.Service, a.Key.ReleaseChannel, a.Digest, a.Commit,
		a.Who, dbTime(a.At), a.Source, a.URL, dbString(a.ConsumedBy)}, nil
}

// SaveTarget implements Store.
func (r *SQLiteRepo) SaveTarget(ctx context.Context, st TargetState) error {
	if err := r.save(ctx, Batch{States: []TargetState{st}}); err != nil {
		return fmt.Errorf("save target %s: %w", st.Key(), err)
	}
	return nil
}

// Save implements Store.
func (r *SQLiteRepo) Save(ctx context.Context, b Batch) error {
	if err := r.save(ctx, b); err != nil {
		return fmt.Errorf("save %d targets, %d job runs and %d approvals: %w", len(b.States), len(b.Runs), len(b.Approvals), err)
	}
	return nil
}

func (r *SQLiteRepo) save(ctx context.Context, b Batch) error {
	err := r.trySave(ctx, b)
	if isForeignKeyError(err) {
		// Another handle pruned a desired state this one thought stored:
		// write every desired state of the batch again.
		r.s.stored.Lock()
		for _, st := range b.States {
			delete(r.s.stored.digest, r.key(st.Key()))
		}
		r.s.stored.Unlock()
		err = r.trySave(ctx, b)
	}
	return err
}

// trySave encodes the rows before the transaction starts, so that it holds
// the write lock only to write them; desired states found stored meanwhile
// are not written, and missing ones are encoded then.
func (r *SQLiteRepo) trySave(ctx context.Context, b Batch) error {
	s := r.s
	states := b.States
	targetRows := make([][]any, len(states))
	for i, st := range states {
		args, err := r.targetArgs(st)
		if err != nil {
			return err
		}
		targetRows[i] = args
	}
	desiredRows := make([][]any, len(states))
	for i, st := range states {
		if !r.isStored(st.Target) {
			args, err := r.desiredArgs(st.Target)
			if err != nil {
				return err
			}
			desiredRows[i] = args
		}
	}
	runRows := make([][]any, len(b.Runs))
	for i, run := range b.Runs {
		args, err := r.runArgs("save", run)
		if err != nil {
			return err
		}
		runRows[i] = args
	}
	approvalRows := make([][]any, len(b.Approvals))
	for i, a := range b.Approvals {
		args, err := r.approvalArgs(a)
		if err != nil {
			return err
		}
		approvalRows[i] = args
	}
	if err := s.prepareBatch(ctx); err != nil {
		return err
	}

	// final is the digest each target is left with.
	final := make(map[desired.Key]string, len(states))
	for _, st := range states {
		final[st.Key()] = st.Target.Digest
	}
	write := func(tx *sql.Tx) error {
		inserts, prunes, err := r.desiredWrites(states, desiredRows, final)
		if err != nil {
			return err
		}
		if err := execRows(ctx, tx, s.batch.desired, inserts); err != nil {
			return fmt.Errorf("save desired states: %w", err)
		}
		if err := execRows(ctx, tx, s.batch.target, targetRows); err != nil {
			return fmt.Errorf("save targets: %w", err)
		}
		if err := execRows(ctx, tx, s.batch.prune, prunes); err != nil {
			return fmt.Errorf("prune desired states: %w", err)
		}
		if err := execRows(ctx, tx, s.batch.run, runRows); err != nil {
			return fmt.Errorf("save job runs: %w", err)
		}
		if err := execRows(ctx, tx, s.batch.approval, approvalRows); err != nil {
			return fmt.Errorf("save approvals: %w", err)
		}
		return nil
	}
	committed := func() {
		s.stored.Lock()
		for k, digest := range final {
			s.stored.digest[r.key(k)] = digest
		}
		s.stored.Unlock()
	}
	return s.inTxThen(ctx, write, committed)
}

// desiredWrites works out, under the write lock, which desired states to
// insert: those not known stored, each once; rows encoded beforehand are in
// pre, those found missing since are encoded now. A target given a desired
// state not known stored is pruned afterwards down to its final one.
func (r *SQLiteRepo) desiredWrites(states []TargetState, pre [][]any, final map[desired.Key]string) (inserts, prunes [][]any, err error) {
	type keyDigest struct {
		key    desired.Key
		digest string
	}
	seen := map[keyDigest]bool{}
	pruned := map[desired.Key]bool{}
	for i, st := range states {
		t := st.Target
		if seen[keyDigest{t.Key, t.Digest}] || r.isStored(t) {
			continue
		}
		seen[keyDigest{t.Key, t.Digest}] = true
		args := pre[i]
		if args == nil {
			if args, err = r.desiredArgs(t); err != nil {
				return nil, nil, err
			}
		}
		inserts = append(inserts, args)
		if !pruned[t.Key] {
			pruned[t.Key] = true
			prunes = append(prunes, []any{r.name, t.Application, t.Service, t.ReleaseChannel, final[t.Key]})
		}
	}
	return inserts, prunes, nil
}

// isStored reports whether desired_states is known to hold t.
func (r *SQLiteRepo) isStored(t desired.Target) bool {
	r.s.stored.Lock()
	defer r.s.stored.Unlock()
	digest, ok := r.s.stored.digest[r.key(t.Key)]
	return ok && digest == t.Digest
}

// prepareBatch prepares the statements of SaveTargets on the handle, so
// that each is prepared once per connection rather than per transaction.
func (s *SQLite) prepareBatch(ctx context.Context) error {
	s.batch.once.Do(func() {
		// A cancelled ctx must not spoil them for later calls.
		pctx := context.WithoutCancel(ctx)
		for _, p := range []struct {
			stmt  **sql.Stmt
			query string
		}{
			{&s.batch.target, upsertTarget}, {&s.batch.run, upsertRun},
			{&s.batch.desired, insertDesired}, {&s.batch.prune, pruneDesired},
			{&s.batch.approval, upsertApproval},
		} {
			if *p.stmt, s.batch.err = s.db.PrepareContext(pctx, p.query); s.batch.err != nil {
				return
			}
		}
	})
	if s.batch.err != nil {
		return fmt.Errorf("prepare saving targets: %w", s.batch.err)
	}
	return nil
}

// execRows runs the prepared statement in tx with each row of arguments.
func execRows(ctx context.Context, tx *sql.Tx, prepared *sql.Stmt, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	stmt := tx.StmtContext(ctx, prepared)
	defer stmt.Close()
	for _, args := range rows {
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

func isForeignKeyError(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// isBusy reports whether err is SQLite's SQLITE_BUSY: the file is locked by
// another connection.
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}
