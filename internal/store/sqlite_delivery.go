package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Delivery is a GitHub webhook delivery as received: stored before it is
// acknowledged so that a crash between acknowledging and handling it loses
// nothing, and so that a redelivery of the same ID is recognised.
type Delivery struct {
	ID    string // X-GitHub-Delivery
	Event string // X-GitHub-Event
	// Repo is the repository the delivery concerns; empty for one about
	// the installation as a whole.
	Repo       string
	Payload    []byte
	ReceivedAt time.Time
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

// MarkDeliveryProcessed records that delivery id was handled at at; errMsg
// says why handling failed, empty when it did not. Either way the delivery
// is no longer pending. An unknown id is ErrNotFound.
func (s *SQLite) MarkDeliveryProcessed(ctx context.Context, id string, at time.Time, errMsg string) error {
	if at.IsZero() {
		return fmt.Errorf("mark delivery %s processed: zero time", id)
	}
	res, err := s.write(ctx, `UPDATE deliveries SET processed_at = ?, error = ? WHERE id = ?`,
		dbTime(at), errMsg, id)
	if err != nil {
		return fmt.Errorf("mark delivery %s processed: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("mark delivery %s processed: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("mark delivery %s processed: %w", id, ErrNotFound)
	}
	return nil
}

// PendingDeliveries returns the deliveries recorded but not yet processed,
// in the order they were received.
func (s *SQLite) PendingDeliveries(ctx context.Context) ([]Delivery, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, event, repo, payload, received_at FROM deliveries
		WHERE processed_at IS NULL ORDER BY received_at, rowid`)
	if err != nil {
		return nil, fmt.Errorf("list pending deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var (
			d          Delivery
			receivedAt sql.NullString
		)
		if err := rows.Scan(&d.ID, &d.Event, &d.Repo, &d.Payload, &receivedAt); err != nil {
			return nil, fmt.Errorf("list pending deliveries: %w", err)
		}
		if d.ReceivedAt, err = parseTime(receivedAt); err != nil {
			return nil, fmt.Errorf("delivery %s: %w", d.ID, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pending deliveries: %w", err)
	}
	return out, nil
}

// PruneDeliveries deletes the deliveries processed before before and
// returns how many it deleted; pending ones are kept whatever their age. A
// pruned ID counts as new again, so keep deliveries longer than anyone would
// redeliver them.
func (s *SQLite) PruneDeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.write(ctx, `DELETE FROM deliveries
		WHERE processed_at IS NOT NULL AND processed_at < ?`, dbTime(before))
	if err != nil {
		return 0, fmt.Errorf("prune deliveries processed before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	return n, nil
}
