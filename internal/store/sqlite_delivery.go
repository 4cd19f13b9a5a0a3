package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Delivery is a GitHub webhook delivery as received: stored before it is
// acknowledged so that a crash between acknowledging and handling it loses
// nothing, and so that a redelivery of the same ID is recognised. The
// deliveries table is the bot's queue of work from GitHub.
type Delivery struct {
	ID    string // X-GitHub-Delivery: the same on a redelivery
	Event string // X-GitHub-Event
	// Repo is the repository the delivery concerns; empty for one about
	// an installation as a whole.
	Repo       string
	Payload    []byte
	ReceivedAt time.Time

	// Attempts counts the failed attempts to process it; LastError is
	// the last one's error, and NextAttempt when to try again.
	Attempts    int
	LastError   string
	NextAttempt time.Time
}

// RecordDelivery stores a webhook delivery before it is acknowledged.
// isNew is false when a delivery with that ID was recorded before: it is
// left as it was and must not be processed again.
func (s *SQLite) RecordDelivery(ctx context.Context, d Delivery) (isNew bool, err error) {
	id := d.ID
	if id == "" {
		return false, fmt.Errorf("record %s delivery: empty ID", d.Event)
	}
	payload := d.Payload
	if payload == nil {
		payload = []byte{}
	}
	res, err := s.write(ctx, `INSERT INTO deliveries (id, event, repo, payload, received_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`, id, d.Event, d.Repo, payload, dbTime(d.ReceivedAt))
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", id, err)
	}
	return n == 1, nil
}

// DeliveryDone records that delivery id was processed at at.
func (s *SQLite) DeliveryDone(ctx context.Context, id string, at time.Time) error {
	return s.endAttempt(ctx, id, `status = 'done', processed_at = ?, next_attempt_at = NULL`, dbTime(at))
}

// DeliveryFailed records a failed attempt to process delivery id at at:
// it is tried again at retryAt, or with a zero retryAt given up and
// marked failed.
func (s *SQLite) DeliveryFailed(ctx context.Context, id string, at time.Time, errMsg string, retryAt time.Time) error {
	if retryAt.IsZero() {
		return s.endAttempt(ctx, id, `status = 'failed', processed_at = ?, attempts = attempts + 1, error = ?, next_attempt_at = NULL`,
			dbTime(at), errMsg)
	}
	return s.endAttempt(ctx, id, `attempts = attempts + 1, error = ?, next_attempt_at = ?`, errMsg, dbTime(retryAt))
}

func (s *SQLite) endAttempt(ctx context.Context, id, set string, args ...any) error {
	res, err := s.write(ctx, `UPDATE deliveries SET `+set+` WHERE id = ? AND status = 'pending'`, append(args, id)...)
	if err != nil {
		return fmt.Errorf("record the processing of delivery %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("record the processing of delivery %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("record the processing of delivery %s: no pending delivery: %w", id, ErrNotFound)
	}
	return nil
}

// PendingDeliveries returns the deliveries recorded but neither done nor
// given up, in the order they were received; those whose NextAttempt is
// later than now included, for the caller to schedule.
func (s *SQLite) PendingDeliveries(ctx context.Context) ([]Delivery, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, event, repo, payload, received_at, attempts, error, next_attempt_at
		FROM deliveries WHERE status = 'pending' ORDER BY received_at, rowid`)
	if err != nil {
		return nil, fmt.Errorf("list pending deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var (
			d                   Delivery
			receivedAt, retryAt sql.NullString
		)
		if err := rows.Scan(&d.ID, &d.Event, &d.Repo, &d.Payload, &receivedAt, &d.Attempts, &d.LastError, &retryAt); err != nil {
			return nil, fmt.Errorf("list pending deliveries: %w", err)
		}
		if d.ReceivedAt, err = parseTime(receivedAt); err != nil {
			return nil, fmt.Errorf("delivery %s: %w", d.ID, err)
		}
		if d.NextAttempt, err = parseTime(retryAt); err != nil {
			return nil, fmt.Errorf("delivery %s: %w", d.ID, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pending deliveries: %w", err)
	}
	return out, nil
}

// KnownDeliveries reports which of ids were recorded, whatever became of
// them.
func (s *SQLite) KnownDeliveries(ctx context.Context, ids []string) (map[string]bool, error) {
	known := make(map[string]bool, len(ids))
	const batch = 500
	for len(ids) > 0 {
		n := min(len(ids), batch)
		args := make([]any, n)
		marks := make([]byte, 0, 2*n)
		for i, id := range ids[:n] {
			args[i] = id
			if i > 0 {
				marks = append(marks, ',')
			}
			marks = append(marks, '?')
		}
		rows, err := s.db.QueryContext(ctx, `SELECT id FROM deliveries WHERE id IN (`+string(marks)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("look up deliveries: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("look up deliveries: %w", err)
			}
			known[id] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("look up deliveries: %w", err)
		}
		ids = ids[n:]
	}
	return known, nil
}

// DeliveryCounts is how many deliveries wait and how long the oldest has.
type DeliveryCounts struct {
	Pending, Failed int
	OldestPending   time.Time // zero when none is
}

// CountDeliveries counts the pending and the given-up deliveries.
func (s *SQLite) CountDeliveries(ctx context.Context) (DeliveryCounts, error) {
	var c DeliveryCounts
	var oldest sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM deliveries WHERE status = 'pending'),
		(SELECT count(*) FROM deliveries WHERE status = 'failed'),
		(SELECT min(received_at) FROM deliveries WHERE status = 'pending')`).Scan(&c.Pending, &c.Failed, &oldest)
	if err != nil {
		return c, fmt.Errorf("count deliveries: %w", err)
	}
	c.OldestPending, err = parseTime(oldest)
	return c, err
}

// PruneDeliveries deletes the deliveries done or given up before before,
// and returns how many it deleted; pending ones are kept whatever their
// age. A pruned ID counts as new again, so keep deliveries longer than
// GitHub would redeliver them (3 days; 7 on GitHub Enterprise Server).
func (s *SQLite) PruneDeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.write(ctx, `DELETE FROM deliveries
		WHERE status <> 'pending' AND processed_at < ?`, dbTime(before))
	if err != nil {
		return 0, fmt.Errorf("prune deliveries processed before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	return n, nil
}
