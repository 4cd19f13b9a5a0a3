package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	limitsRuntime = "runtime: {name: r, custom: {proxyRuntime: {runtime: k}, apply: {kubernetesConfig: {local: {path: jobs/a.yaml}}}}}\n"
	limitsJob     = "apiVersion: batch/v1\nkind: Job\nspec: {}\n"
	limitsApp     = "application: {name: a, releaseChannels: [{name: c, runtimes: [{runtime: r}]}]}\n"
)

func symlink(target string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
}

func file(data string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(data)} }

func problems(err error) []string {
	var es Errors
	if err == nil {
		return nil
	}
	if !errors.As(err, &es) {
		return []string{"not Errors: " + err.Error()}
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Error())
	}
	return out
}

// A *.pvn.yaml that is a symlink is read when it stays inside the
// repository (with a warning saying so), and reported when it does not;
// it is never skipped silently.
func TestConfigSymlinks(t *testing.T) {
	base := fstest.MapFS{"rt.pvn.yaml": file(limitsRuntime), "jobs/a.yaml": file(limitsJob)}
	tests := map[string]struct {
		files    fstest.MapFS
		errs     []string
		warnings []string
		apps     int
	}{
		"inside, to a file of another name": {
			files:    fstest.MapFS{"app.pvn.yaml": symlink("shared/app.yaml"), "shared/app.yaml": file(limitsApp)},
			warnings: []string{"app.pvn.yaml:1:1: warning: symlink to shared/app.yaml: read from there"},
			apps:     1,
		},
		"inside, to another config file: read once": {
			files:    fstest.MapFS{"app.pvn.yaml": symlink("real/app.pvn.yaml"), "real/app.pvn.yaml": file(limitsApp)},
			warnings: []string{"app.pvn.yaml:1:1: warning: symlink to real/app.pvn.yaml: read from there"},
			apps:     1,
		},
		"through a linked folder": {
			files:    fstest.MapFS{"app.pvn.yaml": symlink("cur/app.yaml"), "cur": symlink("v2"), "v2/app.yaml": file(limitsApp)},
			warnings: []string{"app.pvn.yaml:1:1: warning: symlink to v2/app.yaml: read from there"},
			apps:     1,
		},
		"leaving the repository": {
			files: fstest.MapFS{"deploy/app.pvn.yaml": symlink("../../etc/app.yaml")},
			errs:  []string{`deploy/app.pvn.yaml:1:1: symlink to "../../etc/app.yaml" leads outside the repository: not read`},
		},
		"absolute": {
			files: fstest.MapFS{"app.pvn.yaml": symlink("/etc/passwd")},
			errs:  []string{`app.pvn.yaml:1:1: symlink to "/etc/passwd" leads outside the repository: not read`},
		},
		"broken": {
			files: fstest.MapFS{"app.pvn.yaml": symlink("gone.yaml")},
			errs:  []string{`app.pvn.yaml:1:1: symlink to "gone.yaml" leads to nothing: not read`},
		},
		"loop": {
			files: fstest.MapFS{"app.pvn.yaml": symlink("b"), "b": symlink("app.pvn.yaml")},
			errs:  []string{`app.pvn.yaml:1:1: symlink to "b": too many levels of symbolic links: not read`},
		},
		"to a folder": {
			files: fstest.MapFS{"app.pvn.yaml": symlink("jobs")},
			errs:  []string{`app.pvn.yaml:1:1: symlink to "jobs" leads to a folder, not a file: not read`},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for k, v := range base {
				fsys[k] = v
			}
			for k, v := range tt.files {
				fsys[k] = v
			}
			s, err := LoadFS(fsys)
			require.NotNil(t, s, "%v", err)
			assert.Equal(t, tt.errs, problems(err))
			assert.Equal(t, tt.warnings, problems(s.Warnings.orNil()))
			assert.Len(t, s.Applications, tt.apps)
		})
	}
}

// On disk too: a link out of the folder is refused, not followed nor
// skipped.
func TestConfigSymlinksOnDisk(t *testing.T) {
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "app.yaml"), []byte(limitsApp), 0o644))
	repo := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(repo, "rt.pvn.yaml"), []byte(limitsRuntime), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(repo, "jobs"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "jobs/a.yaml"), []byte(limitsJob), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(outside, "app.yaml"), filepath.Join(repo, "app.pvn.yaml")))

	s, err := LoadDir(repo)
	require.NotNil(t, s)
	assert.Equal(t, []string{`app.pvn.yaml:1:1: symlink to "` + filepath.Join(outside, "app.yaml") + `" leads outside the repository: not read`}, problems(err))
	assert.Empty(t, s.Applications)

	require.NoError(t, os.Remove(filepath.Join(repo, "app.pvn.yaml")))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "app.yaml"), []byte(limitsApp), 0o644))
	require.NoError(t, os.Symlink("app.yaml", filepath.Join(repo, "app.pvn.yaml")))
	s, err = LoadDir(repo)
	require.NoError(t, err)
	assert.Len(t, s.Applications, 1)
}

// A kubernetesConfig file that is a symlink leading out of the repository
// is refused like a path with "../".
func TestKubernetesConfigSymlinkEscapes(t *testing.T) {
	want := `rt.pvn.yaml:1:92: kubernetesConfig file jobs/a.yaml: symlink to "../../secrets/job.yaml" leads outside the repository`
	s, err := LoadFS(fstest.MapFS{"rt.pvn.yaml": file(limitsRuntime), "jobs/a.yaml": symlink("../../secrets/job.yaml")})
	require.NotNil(t, s)
	assert.Equal(t, []string{want}, problems(err))

	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "job.yaml"), []byte(limitsJob), 0o644))
	repo := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(repo, "rt.pvn.yaml"), []byte(limitsRuntime), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(repo, "jobs"), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(outside, "job.yaml"), filepath.Join(repo, "jobs/a.yaml")))
	s, err = LoadDir(repo)
	require.NotNil(t, s)
	assert.Equal(t, []string{`rt.pvn.yaml:1:92: kubernetesConfig file jobs/a.yaml: symlink to "` + filepath.Join(outside, "job.yaml") + `" leads outside the repository`}, problems(err))
	assert.Nil(t, s.Runtimes[0].Custom.Apply.KubernetesConfig.Manifest)

	// Inside the repository, a link is fine.
	s, err = LoadFS(fstest.MapFS{"rt.pvn.yaml": file(limitsRuntime), "jobs/a.yaml": symlink("../shared/job.yaml"), "shared/job.yaml": file(limitsJob)})
	require.NoError(t, err)
	assert.Equal(t, limitsJob, string(s.Runtimes[0].Custom.Apply.KubernetesConfig.Manifest))
}

// SPEC §8: a config file over 1 MiB and a repository of more than 10,000
// config files are refused, naming the limit.
func TestConfigFileLimits(t *testing.T) {
	big := "# " + strings.Repeat("x", MaxConfigFileBytes) + "\n" + limitsApp
	want := "big.pvn.yaml:1:1: config file of " + strconv.Itoa(len(big)) + " bytes: the limit is 1 MiB (1048576 bytes)"
	s, err := LoadFS(fstest.MapFS{"big.pvn.yaml": file(big), "rt.pvn.yaml": file(limitsRuntime), "jobs/a.yaml": file(limitsJob)})
	require.NotNil(t, s)
	assert.Equal(t, []string{want}, problems(err))
	assert.Len(t, s.Runtimes, 1, "the other files are read")

	_, err = Parse("big.pvn.yaml", []byte(big))
	assert.EqualError(t, err, want)

	many := fstest.MapFS{}
	for i := range MaxConfigFiles + 5 {
		many[filepath.Join("svc", strings.Repeat("d", i%7), "s"+strconv.Itoa(i)+".pvn.yaml")] = file("")
	}
	s, err = LoadFS(many)
	require.NotNil(t, s)
	assert.Equal(t, []string{".:1:1: more than 10000 config files (*.pvn.yaml): the limit of a repository is 10000"}, problems(err))
	assert.LessOrEqual(t, len(s.Files), MaxConfigFiles)
}

// Invalid UTF-8 and control characters are reported at the offending
// byte, not at 1:1.
func TestEncodingErrorPositions(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"invalid leading byte":   {"service:\n  name: a\xffb\n", "f.pvn.yaml:2:10: invalid YAML: invalid UTF-8 (byte 0xff)"},
		"truncated sequence":     {"service:\n  name: x\n  application: \xc3\n", "f.pvn.yaml:3:16: invalid YAML: invalid UTF-8 (byte 0xc3)"},
		"control character":      {"service:\n  name: ab\x01\n", "f.pvn.yaml:2:11: invalid YAML: control character U+0001 is not allowed"},
		"escape in quotes":       {"a: 'é\x1b[31m'\n", "f.pvn.yaml:1:6: invalid YAML: control character U+001B is not allowed"},
		"delete":                 {"a: b\nc: \x7f\n", "f.pvn.yaml:2:4: invalid YAML: control character U+007F is not allowed"},
		"NUL after multibyte":    {"a: ééé\x00\n", "f.pvn.yaml:1:7: invalid YAML: control character U+0000 is not allowed"},
		"tab and CR are fine":    {"a:\tb\r\nc: \x01\n", "f.pvn.yaml:2:4: invalid YAML: control character U+0001 is not allowed"},
		"C1 control character":   {"a: \u0090\n", "f.pvn.yaml:1:4: invalid YAML: control character U+0090 is not allowed"},
		"other syntax untouched": {"a: b\nc\n", "f.pvn.yaml:2:1: invalid YAML: could not find expected ':'"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("f.pvn.yaml", []byte(tt.in))
			assert.EqualError(t, err, tt.want)
		})
	}
}
