package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSQLiteFailedMigrationRollsBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenSQLite(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	known := migrations
	t.Cleanup(func() { migrations = known })
	migrations = append(known[:len(known):len(known)], func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE half_done (x INTEGER)`); err != nil {
			return err
		}
		return errors.New("second step broke")
	})

	_, err = OpenSQLite(ctx, path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "second step broke")
	assert.Contains(t, err.Error(), "migrate schema to version")

	migrations = known
	s, err = OpenSQLite(ctx, path)
	require.NoError(t, err, "the file is still at the version before the failed migration")
	defer s.Close()
	var version, halfDone int
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version))
	assert.Equal(t, len(known), version)
	require.NoError(t, s.db.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'`).Scan(&halfDone))
	assert.Zero(t, halfDone, "the failed migration's first step was rolled back")
}
