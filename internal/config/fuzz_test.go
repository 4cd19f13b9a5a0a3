package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes Parse (or Validate of what it decoded) panic.
// The seed corpus is every testdata and seed example file.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/*.pvn.yaml", "testdata/refused/*.pvn.yaml", "testdata/jobs/*.yaml", seedDir + "/examples/*.yaml", seedDir + "/repo/*/*.pvn.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.pvn.yaml", data)
		if s == nil {
			t.Fatalf("Parse returned a nil Set (err %v)", err)
		}
		for _, j := range s.jobs() {
			if k := j.KubernetesConfig; k != nil {
				k.Manifest = data
				_ = checkJobManifest(data)
			}
		}
		_ = s.Validate(&Linked{KubernetesRuntimes: []string{"k"}})
		_ = s.Validate(nil)
		_, _ = ParseBot("bot.yaml", data)
	})
}
