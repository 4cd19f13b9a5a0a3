package ingest_test

import (
	"context"
	"io/fs"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/ingest"
	"github.com/pvnbot/pvnbot/internal/store"
)

func tree(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, content := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	return fsys
}

var valid = map[string]string{
	"vm.pvn.yaml": runtimeYAML, "shop.pvn.yaml": appYAML, "web.pvn.yaml": serviceYAML("web", "1"),
}

func with(files map[string]string, name, content string) map[string]string {
	out := map[string]string{name: content}
	for k, v := range files {
		if k != name {
			out[k] = v
		}
	}
	return out
}

// Problems come typed, at their file, line and column, whichever stage
// found them: decoding, validation or rendering.
func TestRenderProblems(t *testing.T) {
	tests := map[string]struct {
		files map[string]string
		want  []config.Pos
		msg   string
	}{
		"decoding": {
			files: with(valid, "web.pvn.yaml", "service:\n  name: web\n  application: shop\n  colour: blue\n"),
			want:  []config.Pos{{File: "web.pvn.yaml", Line: 4, Col: 3}},
			msg:   `unknown key "colour"`,
		},
		"validation": {
			files: with(valid, "web.pvn.yaml", "service:\n  name: web\n  application: shoop\n"),
			want:  []config.Pos{{File: "web.pvn.yaml", Line: 3, Col: 3}},
			msg:   `unknown application "shoop"`,
		},
		"rendering": {
			files: with(valid, "web.pvn.yaml", serviceYAML("web", `{{len 3}}`)),
			want:  []config.Pos{{File: "web.pvn.yaml", Line: 6, Col: 31}, {File: "web.pvn.yaml", Line: 6, Col: 31}},
			msg:   "shop/web/production: ",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := ingest.Render(tree(tt.files), "c1", ingest.Options{})
			require.NoError(t, err)
			assert.Nil(t, res.Targets)
			problems := res.Problems
			var got []config.Pos
			for _, p := range problems {
				got = append(got, p.Pos)
			}
			require.Equal(t, tt.want, got, "%v", problems)
			assert.Contains(t, problems.Error(), tt.msg)
		})
	}
}

// engineFunc records what it is given.
type engineFunc func(commit string, targets []desired.Target) error

func (f engineFunc) SetDesired(_ context.Context, commit string, targets []desired.Target) error {
	return f(commit, targets)
}

// A commit with problems changes nothing and is recorded, with them, so
// that it is not taken again; a good one is recorded once the engine has
// its targets.
func TestIngestRecordsEveryCommit(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory().Repo("github.com/acme/deploys")
	var got []string
	repo := &ingest.Repo{Name: "github.com/acme/deploys", Log: st, Engine: engineFunc(func(commit string, targets []desired.Target) error {
		got = append(got, commit)
		assert.Len(t, targets, 2)
		return nil
	})}

	res, err := repo.Ingest(ctx, "main", "good", tree(valid))
	require.NoError(t, err)
	assert.Len(t, res.Targets, 2)
	assert.Empty(t, res.Problems)

	res, err = repo.Ingest(ctx, "main", "bad", tree(with(valid, "web.pvn.yaml", "service: [")))
	require.NoError(t, err)
	assert.Nil(t, res.Targets)
	require.Len(t, res.Problems, 1)
	assert.Equal(t, []string{"good"}, got, "the bad commit changed nothing")
	sha, _, err := st.LastIngested(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, "bad", sha, "but it was taken: the next commit comes after it")
}

// Warnings come with the targets: they change nothing.
func TestRenderWarnings(t *testing.T) {
	res, err := ingest.Render(tree(with(valid, "web.pvn.yaml", "service:\n  name: web\n  application: shop\n  labels: {team: a}\n")), "c1", ingest.Options{})
	require.NoError(t, err)
	assert.Empty(t, res.Problems)
	assert.Len(t, res.Targets, 2)
	require.Len(t, res.Warnings, 1)
	assert.Equal(t, config.Pos{File: "web.pvn.yaml", Line: 4, Col: 3}, res.Warnings[0].Pos)
	assert.True(t, res.Warnings[0].Severity.IsWarning())
}

// A commit whose rendering passes a limit (here, gigabytes from two
// ranges) is a problem of that commit, found in bounded memory and
// recorded: the next commit is taken, never this one again.
func TestIngestSkipsACommitThatPassesALimit(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory().Repo("github.com/acme/deploys")
	var got []string
	repo := &ingest.Repo{Name: "github.com/acme/deploys", Log: st, Engine: engineFunc(func(commit string, targets []desired.Target) error {
		got = append(got, commit)
		return nil
	})}
	bomb := strings.Replace(runtimeYAML, `"{{.Params.version}}"`, `'{{range 100000}}{{range 100000}}{{printf "%01000d" 0}}{{end}}{{end}}'`, 1)
	var res ingest.Result
	var err error
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err = repo.Ingest(ctx, "main", "bomb", tree(with(valid, "vm.pvn.yaml", bomb)))
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	require.NotEmpty(t, res.Problems)
	assert.Contains(t, res.Problems.Error(), "vm.pvn.yaml:6:44: shop/web/production: template: apply.cmd[1]: renders to more than 1 MiB: the limit of one rendered field")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20))

	res, err = repo.Ingest(ctx, "main", "revert", tree(valid))
	require.NoError(t, err)
	assert.Len(t, res.Targets, 2)
	assert.Equal(t, []string{"revert"}, got)
	sha, _, err := st.LastIngested(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, "revert", sha)
}

// A tree that cannot be taken whole (a config leading out of it, too many
// files) is a problem of the commit, not a failure to read it that would
// be tried again for ever.
func TestRenderTreeLimitsAreProblems(t *testing.T) {
	fsys := tree(valid)
	fsys["api.pvn.yaml"] = &fstest.MapFile{Data: []byte("../../etc/api.pvn.yaml"), Mode: fs.ModeSymlink}
	res, err := ingest.Render(fsys, "c1", ingest.Options{})
	require.NoError(t, err)
	assert.Nil(t, res.Targets)
	assert.Equal(t, `api.pvn.yaml:1:1: symlink to "../../etc/api.pvn.yaml" leads outside the repository: not read`, res.Problems.Error())
}
