package gitrepo_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pvnbot/pvnbot/internal/gitrepo"
	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
)

// thousandFiles returns a commit of 1,000 small files in 50 directories two
// levels deep, in a repository of loose objects (as after local commits) and
// in a clone of it whose objects are in a pack (as after a fetch or gc).
func thousandFiles(b *testing.B) (sha string, repos map[string]*gitrepo.Repo) {
	b.Helper()
	src := gitrepotest.New(b)
	for d := range 50 {
		for f := range 20 {
			src.Write(fmt.Sprintf("services/group%d/svc%d/file%d.pvn.yaml", d%5, d, f),
				strings.Repeat(fmt.Sprintf("key%d: value %d\n", f, d), 12))
		}
	}
	sha = src.Commit("1,000 files")
	packed, err := gitrepo.NewMirror(b.TempDir()).Sync(b.Context(), "file://"+src.Dir, sha, "")
	if err != nil {
		b.Fatal(err)
	}
	return sha, map[string]*gitrepo.Repo{"loose": src.Open(), "packed": packed}
}

func BenchmarkFSWalkRead1000(b *testing.B) {
	sha, repos := thousandFiles(b)
	for _, name := range []string{"loose", "packed"} {
		repo := repos[name]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				fsys, err := repo.FS(sha)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					_, err = fs.ReadFile(fsys, p)
					n++
					return err
				})
				if err != nil || n != 1000 {
					b.Fatal(n, err)
				}
			}
		})
	}
}

// BenchmarkWorktreesAcquire1000 times writing a checkout (its removal on
// release is not timed); baseline writes the same files with os.WriteFile
// from memory, the floor set by the file system.
func BenchmarkWorktreesAcquire1000(b *testing.B) {
	sha, repos := thousandFiles(b)
	for _, name := range []string{"loose", "packed"} {
		repo := repos[name]
		b.Run(name, func(b *testing.B) {
			w := gitrepo.NewWorktrees(repo, b.TempDir(), gitrepo.KeepIdle(0))
			for b.Loop() {
				_, release, err := w.Acquire(b.Context(), sha)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				release()
				b.StartTimer()
			}
		})
	}
	b.Run("kept-idle", func(b *testing.B) {
		w := gitrepo.NewWorktrees(repos["packed"], b.TempDir())
		for b.Loop() {
			_, release, err := w.Acquire(b.Context(), sha)
			if err != nil {
				b.Fatal(err)
			}
			release()
		}
	})
	b.Run("baseline-os-writefile", func(b *testing.B) {
		fsys, err := repos["packed"].FS(sha)
		if err != nil {
			b.Fatal(err)
		}
		files := map[string][]byte{}
		_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files[p], err = fs.ReadFile(fsys, p)
			}
			return err
		})
		root := b.TempDir()
		for b.Loop() {
			dir := filepath.Join(root, "checkout")
			for p, content := range files {
				full := filepath.Join(dir, p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(full, content, 0o644); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = os.RemoveAll(dir)
			b.StartTimer()
		}
	})
}
