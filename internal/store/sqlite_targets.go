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
func (s *SQLite) LoadTargets(ctx context.Context) ([]TargetState, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM targets`).Scan(&n); err != nil {
		return nil, fmt.Errorf("count targets: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT t.application, t.service, t.release_channel, t.digest, t.data, d.target
		FROM targets t LEFT JOIN desired_states d USING (application, service, release_channel, digest)`)
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
		if _, ok := s.stored.digest[st.Key()]; !ok {
			s.stored.digest[st.Key()] = st.Target.Digest
		}
	}
	s.stored.Unlock()
	return out, nil
}

const (
	upsertTarget = `INSERT INTO targets
	(application, service, release_channel, status, message, commit_sha, digest, updated_at, data)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (application, service, release_channel) DO UPDATE SET
	status = excluded.status, message = excluded.message, commit_sha = excluded.commit_sha,
	digest = excluded.digest, updated_at = excluded.updated_at, data = excluded.data`
	insertDesired = `INSERT OR IGNORE INTO desired_states
	(application, service, release_channel, digest, target) VALUES (?, ?, ?, ?, ?)`
	// pruneDesired deletes the desired states of a target other than the
	// one it points at.
	pruneDesired = `DELETE FROM desired_states
	WHERE application = ? AND service = ? AND release_channel = ? AND digest <> ?`
)

func targetArgs(st TargetState) ([]any, error) {
	data, err := json.Marshal(stateRow{TargetState: st})
	if err != nil {
		return nil, fmt.Errorf("encode target %s: %w", st.Key(), err)
	}
	k := st.Key()
	return []any{k.Application, k.Service, k.ReleaseChannel, string(st.Status), st.Message,
		st.Target.Commit, st.Target.Digest, dbTime(st.UpdatedAt), string(data)}, nil
}

func desiredArgs(t desired.Target) ([]any, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode desired state %s of target %s: %w", t.Digest, t.Key, err)
	}
	return []any{t.Application, t.Service, t.ReleaseChannel, t.Digest, string(data)}, nil
}

// SaveTarget implements Store.
func (s *SQLite) SaveTarget(ctx context.Context, st TargetState) error {
	if err := s.saveTargets(ctx, []TargetState{st}, nil); err != nil {
		return fmt.Errorf("save target %s: %w", st.Key(), err)
	}
	return nil
}

// SaveTargets implements Store.
func (s *SQLite) SaveTargets(ctx context.Context, states []TargetState, runs []JobRun) error {
	if err := s.saveTargets(ctx, states, runs); err != nil {
		return fmt.Errorf("save %d targets and %d job runs: %w", len(states), len(runs), err)
	}
	return nil
}

func (s *SQLite) saveTargets(ctx context.Context, states []TargetState, runs []JobRun) error {
	err := s.trySaveTargets(ctx, states, runs)
	if isForeignKeyError(err) {
		// Another handle pruned a desired state this one thought stored:
		// write every desired state of the batch again.
		s.stored.Lock()
		for _, st := range states {
			delete(s.stored.digest, st.Key())
		}
		s.stored.Unlock()
		err = s.trySaveTargets(ctx, states, runs)
	}
	return err
}

// trySaveTargets encodes the rows before the transaction starts, so that
// it holds the write lock only to write them; desired states found stored
// meanwhile are not written, and missing ones are encoded then.
func (s *SQLite) trySaveTargets(ctx context.Context, states []TargetState, runs []JobRun) error {
	targetRows := make([][]any, len(states))
	for i, st := range states {
		args, err := targetArgs(st)
		if err != nil {
			return err
		}
		targetRows[i] = args
	}
	desiredRows := make([][]any, len(states))
	for i, st := range states {
		if !s.isStored(st.Target) {
			args, err := desiredArgs(st.Target)
			if err != nil {
				return err
			}
			desiredRows[i] = args
		}
	}
	runRows := make([][]any, len(runs))
	for i, run := range runs {
		args, err := runArgs("save", run)
		if err != nil {
			return err
		}
		runRows[i] = args
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
		inserts, prunes, err := s.desiredWrites(states, desiredRows, final)
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
		return nil
	}
	committed := func() {
		s.stored.Lock()
		for k, digest := range final {
			s.stored.digest[k] = digest
		}
		s.stored.Unlock()
	}
	return s.inTxThen(ctx, write, committed)
}

// desiredWrites works out, under the write lock, which desired states to
// insert: those not known stored, each once; rows encoded beforehand are in
// pre, those found missing since are encoded now. A target given a desired
// state not known stored is pruned afterwards down to its final one.
func (s *SQLite) desiredWrites(states []TargetState, pre [][]any, final map[desired.Key]string) (inserts, prunes [][]any, err error) {
	type keyDigest struct {
		key    desired.Key
		digest string
	}
	seen := map[keyDigest]bool{}
	pruned := map[desired.Key]bool{}
	for i, st := range states {
		t := st.Target
		if seen[keyDigest{t.Key, t.Digest}] || s.isStored(t) {
			continue
		}
		seen[keyDigest{t.Key, t.Digest}] = true
		args := pre[i]
		if args == nil {
			if args, err = desiredArgs(t); err != nil {
				return nil, nil, err
			}
		}
		inserts = append(inserts, args)
		if !pruned[t.Key] {
			pruned[t.Key] = true
			prunes = append(prunes, []any{t.Application, t.Service, t.ReleaseChannel, final[t.Key]})
		}
	}
	return inserts, prunes, nil
}

// isStored reports whether desired_states is known to hold t.
func (s *SQLite) isStored(t desired.Target) bool {
	s.stored.Lock()
	defer s.stored.Unlock()
	digest, ok := s.stored.digest[t.Key]
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
