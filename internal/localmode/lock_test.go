package localmode

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// One bot per state file, whatever the path that leads to it: a symlink,
// a hard link, another spelling.
func TestLockIsOfTheFileWhateverThePath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pvnbot.db")
	held, err := tryLock(path, 0)
	require.NoError(t, err)

	other := t.TempDir()
	symlink := filepath.Join(other, "link.db")
	require.NoError(t, os.Symlink(path, symlink))
	hardlink := filepath.Join(dir, "hard.db")
	require.NoError(t, os.Link(path, hardlink))
	require.NoError(t, os.Symlink(dir, filepath.Join(other, "state")))
	for name, p := range map[string]string{
		"symlink":          symlink,
		"hard link":        hardlink,
		"linked folder":    filepath.Join(other, "state", "pvnbot.db"),
		"another spelling": dir + "/./sub/../pvnbot.db",
	} {
		if name == "another spelling" {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o700))
		}
		_, err := tryLock(p, 0)
		assert.ErrorIs(t, err, errLocked, name)
	}

	held.release()
	again, err := tryLock(hardlink, 0)
	require.NoError(t, err, "free once let go")
	again.release()
}
