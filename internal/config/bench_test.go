package config

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// writeGeneratedRepo writes 1,000 config files: 50 runtimes (half with a
// kubernetesConfig job file), 10 applications of two channels, and 940
// services with parameter values and per-channel overrides.
func writeGeneratedRepo(tb testing.TB, dir string) {
	tb.Helper()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	write("runtimes/jobs/apply.yaml", "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      containers:\n      - name: apply\n        image: \"deployer:{{.Params.version}}\"\n        args: [\"{{.Builtins.Service.Name}}\"]\n")
	for i := range 50 {
		apply := "      taskConfig:\n        program:\n          image: deployer:1\n          cmd: [deploy, \"--version={{.Params.version}}\", \"--replicas={{.Params.replicas}}\", \"{{.Builtins.Commit}}\"]\n"
		if i%2 == 1 {
			apply = "      kubernetesConfig:\n        type: KUBERNETES\n        local:\n          path: jobs/apply.yaml\n"
		}
		write(fmt.Sprintf("runtimes/rt-%02d.pvn.yaml", i), fmt.Sprintf(`runtime:
  name: rt-%02d
  custom:
    proxyRuntime:
      runtime: cluster
    apply:
%s      maxConcurrency: 5
    fetch:
      taskConfig:
        program:
          image: deployer:1
          cmd: [fetch, "--version={{.Params.version}}"]
      pollInterval: 30s
    parameters:
    - name: version
      required: true
      string: {}
    - name: replicas
      int: {defaultValue: 2}
    applyId: "{{.Params.version}}"
`, i, apply))
	}
	for i := range 10 {
		write(fmt.Sprintf("apps/app-%d.pvn.yaml", i), fmt.Sprintf(`application:
  name: app-%d
  releaseChannels:
  - name: staging
    runtimes:
    - runtime: rt-%02d
  - name: production
    runtimes:
    - runtime: rt-%02d
    preconditions:
    - releaseChannelStable: {releaseChannel: staging}
    - manualApproval: {minApprovers: 1}
`, i, i*2, i*2+1))
	}
	for i := range 940 {
		write(fmt.Sprintf("services/svc-%03d.pvn.yaml", i), fmt.Sprintf(`service:
  name: svc-%03d
  application: app-%d
  parameters:
  - name: release
    string: {defaultValue: "1.%d.0"}
  customRuntime:
    parameterValues:
    - name: version
      string: "{{.Params.release}}"
  perReleaseChannel:
  - releaseChannel: production
    customRuntime:
      parameterValues:
      - name: replicas
        int: 4
`, i, i%10, i))
	}
}

func BenchmarkLoadValidate1000(b *testing.B) {
	dir := b.TempDir()
	writeGeneratedRepo(b, dir)
	linked := &Linked{KubernetesRuntimes: []string{"cluster"}}
	b.ReportAllocs()
	for b.Loop() {
		s, err := LoadDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Validate(linked); err != nil {
			b.Fatal(err)
		}
		if len(s.Files) != 1000 {
			b.Fatalf("loaded %d files", len(s.Files))
		}
	}
}
