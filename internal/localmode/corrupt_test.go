package localmode_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/localmode"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/store"

	_ "modernc.org/sqlite"
)

// damage overwrites with garbage the root page of each table named (every
// page but the first, the header and schema, when none is).
func damage(t *testing.T, path string, tables ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	require.NoError(t, err)
	var pageSize int
	require.NoError(t, db.QueryRow("PRAGMA page_size").Scan(&pageSize))
	var pages []int
	for _, table := range tables {
		var root int
		require.NoError(t, db.QueryRow("SELECT rootpage FROM sqlite_schema WHERE name = ?", table).Scan(&root))
		pages = append(pages, root)
	}
	require.NoError(t, db.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	if len(tables) == 0 {
		for p := 2; p*pageSize <= len(data); p++ {
			pages = append(pages, p)
		}
	}
	for _, p := range pages {
		for i := (p - 1) * pageSize; i < p*pageSize; i++ {
			data[i] = byte(i*7 + 3)
		}
	}
	require.NoError(t, os.WriteFile(path, data, 0o600))
}

// A state file whose pages are damaged makes every command fail at once,
// naming the file and what to do, instead of retrying for ever.
func TestCorruptStateFailsFast(t *testing.T) {
	for name, tables := range map[string][]string{
		"every page":     nil,
		"the ingest log": {"ingested_commits"},
		"the targets":    {"targets"},
	} {
		t.Run(name, func(t *testing.T) { testCorruptState(t, tables...) })
	}
}

func testCorruptState(t *testing.T, tables ...string) {
	repo := gitrepotest.New(t)
	repo.Write("all.pvn.yaml", oneShot)
	repo.Commit("web")
	statePath := filepath.Join(t.TempDir(), "state.db")
	_, out, err := runOnce(repo.Dir, statePath, nil)
	require.NoError(t, err, out)
	damage(t, statePath, tables...)

	hints := []string{"state file " + statePath + " is damaged", `sqlite3 ` + statePath + ` "PRAGMA integrity_check"`, "restore it from a backup", "--state"}
	start := time.Now()
	_, out, err = runOnce(repo.Dir, statePath, nil)
	require.Error(t, err, out)
	for _, h := range hints {
		assert.Contains(t, err.Error(), h)
	}
	assert.Less(t, time.Since(start), 10*time.Second, "fails fast")

	_, err = localmode.Status(context.Background(), statePath, "")
	require.Error(t, err)
	for _, h := range hints {
		assert.Contains(t, err.Error(), h, "bot status")
	}
	_, err = localmode.Approve(context.Background(), localmode.ApproveOptions{StatePath: statePath, Request: reconcile.ApprovalRequest{Application: "shop", ReleaseChannel: "staging", Who: "alice"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), hints[0], "bot approve")
}

// Damage found while running stops bot run, watching or not: it does not
// heal by trying again.
func TestCorruptionFoundWhileRunningStopsTheRun(t *testing.T) {
	for _, once := range []bool{true, false} {
		t.Run(map[bool]string{true: "once", false: "watching"}[once], func(t *testing.T) {
			repo := gitrepotest.New(t)
			repo.Write("all.pvn.yaml", oneShot)
			repo.Commit("web")
			var out bytes.Buffer
			opts := localmode.Options{RepoDir: repo.Dir, StatePath: filepath.Join(t.TempDir(), "state.db"), Once: once, Out: &out, Poll: 20 * time.Millisecond}
			localmode.WrapStore(&opts, func(s reconcile.Store) reconcile.Store {
				return &failingAfterApplyStart{Store: s, err: &store.CorruptError{Path: "state.db", Err: errors.New("database disk image is malformed (11)")}}
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := localmode.Run(ctx, opts)
			require.Error(t, err, out.String())
			require.NoError(t, ctx.Err(), "stopped by itself")
			assert.True(t, res.Failed)
			assert.Contains(t, err.Error(), "state file state.db is damaged")
			assert.Contains(t, err.Error(), "PRAGMA integrity_check")
			assert.Contains(t, err.Error(), "not recorded:\n  shop/web/staging: CONVERGED")
		})
	}
}
