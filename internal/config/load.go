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

// LoadDir loads every config file under root; positions are relative to
// root. See LoadFS.
func LoadDir(root string) (*Set, error) {
	if _, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("load configs: %w", err)
	}
	return LoadFS(os.DirFS(root))
}

// LoadFS loads every *.pvn.yaml / *.pvn.yml file of a tree whose root is the
// repository root (a folder, or a commit's tree), skipping .git, .pvnbot,
// node_modules and vendor. The files referenced by kubernetesConfig are read
// from the same tree.
//
// Problems in the configs are returned as an Errors together with the Set
// of what could be decoded; other failures (an unreadable tree) return a nil
// Set. Warnings are in the Set's Warnings, never in the error. Load does
// not check references between configs: call Set.Validate.
func LoadFS(fsys fs.FS) (*Set, error) {
	files, err := findConfigs(fsys, ".")
	if err != nil {
		return nil, err
	}
	return loadFiles(fsys, files)
}

// LoadFiles loads the given config files, and the config files under the
// given folders, with paths relative to root (which is also where
// kubernetesConfig paths are resolved).
func LoadFiles(root string, paths ...string) (*Set, error) {
	fsys := os.DirFS(root)
	var files []string
	for _, p := range paths {
		name := path.Clean(filepath.ToSlash(p))
		if !fs.ValidPath(name) {
			return nil, fmt.Errorf("load configs: %s is not inside %s", p, root)
		}
		info, err := fs.Stat(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("load configs: %w", err)
		}
		if !info.IsDir() {
			files = append(files, name)
			continue
		}
		found, err := findConfigs(fsys, name)
		if err != nil {
			return nil, err
		}
		files = append(files, found...)
	}
	return loadFiles(fsys, files)
}

func findConfigs(fsys fs.FS, dir string) ([]string, error) {
	var files []string
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
		if IsConfigFile(e.Name()) && e.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find config files: %w", err)
	}
	return files, nil
}

func loadFiles(fsys fs.FS, files []string) (*Set, error) {
	s := &Set{}
	var errs Errors
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f] {
			continue
		}
		seen[f] = true
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", f, err)
		}
		parseInto(s, f, data, &errs)
	}
	for _, j := range s.jobs() {
		if k := j.KubernetesConfig; k != nil && k.File != "" {
			k.Manifest = readManifest(fsys, k, &errs)
		}
	}
	s.Warnings = s.Warnings.sorted()
	return s, errs.orNil()
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
	f, err := fsys.Open(k.File)
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
