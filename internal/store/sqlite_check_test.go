package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/store"
)

// A damaged file is refused when it is opened, read-write or read-only,
// with what to do.
func TestOpenRefusesADamagedFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pvnbot.db")
	db, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	_, err = db.Repo("r").IngestCommit(ctx, "main", "abc", "")
	require.NoError(t, err)
	require.NoError(t, db.Close())

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	for i := 4096; i < len(data); i++ {
		data[i] = 0x5a
	}
	require.NoError(t, os.WriteFile(path, data, 0o600))

	for name, open := range map[string]func(context.Context, string, ...store.SQLiteOption) (*store.SQLite, error){
		"read-write": store.OpenSQLite, "read-only": store.OpenSQLiteReadOnly,
	} {
		_, err := open(ctx, path)
		require.Error(t, err, name)
		assert.True(t, store.IsCorrupt(err), name)
		assert.ErrorIs(t, err, store.ErrCorrupt, name)
		var ce *store.CorruptError
		require.ErrorAs(t, err, &ce, name)
		assert.Equal(t, path, ce.Path)
		assert.Contains(t, err.Error(), `sqlite3 `+path+` "PRAGMA integrity_check"`, name)
	}
}

// Opening read-only creates and changes nothing.
func TestOpenReadOnlyCreatesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "pvnbot.db")
	_, err := store.OpenSQLiteReadOnly(ctx, path)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(filepath.Dir(path))
	assert.ErrorIs(t, err, os.ErrNotExist, "no folder made")
	empty := filepath.Join(t.TempDir(), "empty.db")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	_, err = store.OpenSQLiteReadOnly(ctx, empty)
	require.ErrorContains(t, err, "empty.db: it is empty")
	info, err := os.Stat(empty)
	require.NoError(t, err)
	assert.Zero(t, info.Size(), "an empty file stays empty")

	db, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	_, err = db.Repo("r").IngestCommit(ctx, "main", "abc", "")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	ro, err := store.OpenSQLiteReadOnly(ctx, path)
	require.NoError(t, err)
	defer ro.Close()
	sha, _, err := ro.Repo("r").LastIngested(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, "abc", sha)
	_, err = ro.Repo("r").IngestCommit(ctx, "main", "def", "")
	assert.Error(t, err, "a read-only handle writes nothing")
}
