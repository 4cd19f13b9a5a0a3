package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// skipDirs are folders never searched for configs.
var skipDirs = map[string]bool{".git": true, ".pvnbot": true, "node_modules": true, "vendor": true}

// IsConfigFile reports whether name is a *.pvn.yaml or *.pvn.yml file.
func IsConfigFile(name string) bool {
	return strings.HasSuffix(name, ".pvn.yaml") || strings.HasSuffix(name, ".pvn.yml")
}

// Limits of SPEC §8.
const (
	// MaxConfigFileBytes bounds one config file.
	MaxConfigFileBytes = 1 << 20
	// MaxConfigFiles bounds the config files of a repository.
	MaxConfigFiles = 10_000
)

// LoadDir loads every config file under root; positions are relative to
// root. See LoadFS. Symlinks are followed only while they stay under root.
func LoadDir(root string) (*Set, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("load configs: %w", err)
	}
	defer r.Close()
	return LoadFS(r.FS())
}

// LoadFS loads every *.pvn.yaml / *.pvn.yml file of a tree whose root is the
// repository root (a folder, or a commit's tree), skipping .git, .pvnbot,
// node_modules and vendor. The files referenced by kubernetesConfig are read
// from the same tree.
//
// A config file that is a symlink is read from where it leads, with a
// warning, when that stays inside the tree; otherwise it is a problem. So
// are a file over MaxConfigFileBytes and a tree of more than MaxConfigFiles
// config files.
//
// Problems in the configs are returned as an Errors together with the Set
// of what could be decoded; other failures (an unreadable tree) return a nil
// Set. Warnings are in the Set's Warnings, never in the error. Load does
// not check references between configs: call Set.Validate.
func LoadFS(fsys fs.FS) (*Set, error) {
	found := &found{}
	if err := found.walk(fsys, "."); err != nil {
		return nil, err
	}
	return loadFiles(fsys, found)
}

// LoadFiles loads the given config files, and the config files under the
// given folders, with paths relative to root (which is also where
// kubernetesConfig paths are resolved).
func LoadFiles(root string, paths ...string) (*Set, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("load configs: %w", err)
	}
	defer r.Close()
	fsys := r.FS()
	found := &found{}
	for _, p := range paths {
		name := path.Clean(filepath.ToSlash(p))
		if !fs.ValidPath(name) {
			return nil, fmt.Errorf("load configs: %s is not inside %s", p, root)
		}
		info, err := fs.Lstat(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("load configs: %w", err)
		}
		if !info.IsDir() {
			found.add(fsys, name, info.Mode())
			continue
		}
		if err := found.walk(fsys, name); err != nil {
			return nil, err
		}
	}
	return loadFiles(fsys, found)
}

// found is the config files of a tree: where to read each, and what was
// wrong with those that cannot be read.
type found struct {
	files    []string // where to read them: a symlink's target, or the file found
	problems Errors   // warnings too
	full     bool     // MaxConfigFiles reached
}

func (f *found) walk(fsys fs.FS, dir string) error {
	err := fs.WalkDir(fsys, dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if p != dir && skipDirs[e.Name()] {
				return fs.SkipDir
			}
			return nil
		}
		if IsConfigFile(e.Name()) {
			f.add(fsys, p, e.Type())
		}
		if f.full {
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("find config files: %w", err)
	}
	return nil
}

// add takes the config file found at name, of type mode.
func (f *found) add(fsys fs.FS, name string, mode fs.FileMode) {
	if len(f.files) >= MaxConfigFiles {
		if !f.full {
			f.full = true
			f.problemf(".", "more than %d config files (*.pvn.yaml): the limit of a repository is %d", MaxConfigFiles, MaxConfigFiles)
		}
		return
	}
	switch {
	case mode.IsRegular():
		f.files = append(f.files, name)
	case mode&fs.ModeSymlink != 0:
		p, err := resolveLink(fsys, name)
		if err != nil {
			f.problemf(name, "%s: not read", linkProblem(fsys, name, err))
			return
		}
		f.problems = append(f.problems, &Error{Pos: filePos(name), Msg: fmt.Sprintf("symlink to %s: read from there", p), Severity: SeverityWarning})
		f.files = append(f.files, p)
	default:
		f.problemf(name, "not a regular file: not read")
	}
}

func (f *found) problemf(name, format string, args ...any) {
	f.problems = append(f.problems, &Error{Pos: filePos(name), Msg: fmt.Sprintf(format, args...)})
}

func filePos(name string) Pos { return Pos{File: name, Line: 1, Col: 1} }

func loadFiles(fsys fs.FS, found *found) (*Set, error) {
	s := &Set{}
	var errs Errors
	for _, p := range found.problems {
		if p.Severity.IsWarning() {
			s.Warnings = append(s.Warnings, p)
		} else {
			errs = append(errs, p)
		}
	}
	seen := map[string]bool{}
	for _, path := range found.files {
		if seen[path] {
			continue
		}
		seen[path] = true
		data, err := readLimited(fsys, path, MaxConfigFileBytes)
		var big *sizeError
		if errors.As(err, &big) {
			errs = append(errs, &Error{Pos: filePos(path), Msg: big.Error()})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", path, err)
		}
		parseInto(s, path, data, &errs)
	}
	for _, j := range s.jobs() {
		if k := j.KubernetesConfig; k != nil && k.File != "" {
			k.Manifest = readManifest(fsys, k, &errs)
		}
	}
	s.Warnings = s.Warnings.sorted()
	return s, errs.orNil()
}

// sizeError is a config file over MaxConfigFileBytes.
type sizeError struct{ size int64 }

func (e *sizeError) Error() string {
	return fmt.Sprintf("config file of %d bytes: the limit is 1 MiB (%d bytes)", e.size, MaxConfigFileBytes)
}

// readLimited reads the file at name when it holds at most limit bytes;
// otherwise it returns a *sizeError, without reading more than limit+1
// bytes.
func readLimited(fsys fs.FS, name string, limit int) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() > int64(limit) {
		return nil, &sizeError{size: info.Size()}
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, &sizeError{size: int64(len(data))}
	}
	return data, nil
}

// jobs lists the apply, fetch and getInfo jobs of every runtime.
func (s *Set) jobs() []*Job {
	var out []*Job
	for _, r := range s.Runtimes {
		out = append(out, r.jobs()...)
	}
	return out
}

func (r *Runtime) jobs() []*Job {
	out := []*Job{&r.Custom.Apply.Job}
	if r.Custom.Fetch != nil {
		out = append(out, &r.Custom.Fetch.Job)
	}
	if r.Custom.GetInfo != nil {
		out = append(out, &r.Custom.GetInfo.Job)
	}
	return out
}

// maxManifest bounds the size of a job file.
const maxManifest = 1 << 20

func readManifest(fsys fs.FS, k *KubernetesConfig, errs *Errors) []byte {
	fail := func(format string, args ...any) []byte {
		*errs = append(*errs, &Error{Pos: k.PathPos, Msg: fmt.Sprintf("kubernetesConfig file %s: ", k.File) + fmt.Sprintf(format, args...)})
		return nil
	}
	name := k.File
	if info, err := fs.Lstat(fsys, name); err == nil && info.Mode()&fs.ModeSymlink != 0 {
		if name, err = resolveLink(fsys, k.File); err != nil {
			return fail("%s", linkProblem(fsys, k.File, err))
		}
	}
	f, err := fsys.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return fail("not found")
	}
	if err != nil {
		return fail("%v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return fail("%v", err)
	}
	if len(data) > maxManifest {
		return fail("larger than %d bytes", maxManifest)
	}
	if msg := checkJobManifest(data); msg != "" {
		return fail("%s", msg)
	}
	return data
}

var actionRE = regexp.MustCompile(`(?s)\{\{.*?\}\}`)

// checkJobManifest checks that data is exactly one batch/v1 Job. Template
// actions are replaced by a placeholder first, so that a parameter may stand
// anywhere a scalar may.
func checkJobManifest(data []byte) string {
	plain := actionRE.ReplaceAll(data, []byte("pvn-template"))
	dec := yaml.NewDecoder(bytes.NewReader(plain))
	var jobs int
	for {
		var doc yaml.Node
		err := decodeDoc(dec, &doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")
		}
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue
		}
		var head struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
		}
		if doc.Content[0].Kind != yaml.MappingNode || doc.Decode(&head) != nil {
			return fmt.Sprintf("line %d: want a Kubernetes object", doc.Content[0].Line)
		}
		if head.APIVersion != "batch/v1" || head.Kind != "Job" {
			return fmt.Sprintf("line %d: holds %s %s; want exactly one batch/v1 Job and nothing else",
				doc.Content[0].Line, orUnset(head.APIVersion), orUnset(head.Kind))
		}
		jobs++
	}
	switch jobs {
	case 0:
		return "holds no batch/v1 Job"
	case 1:
		return ""
	}
	return fmt.Sprintf("holds %d Jobs; want exactly one batch/v1 Job and nothing else", jobs)
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}
