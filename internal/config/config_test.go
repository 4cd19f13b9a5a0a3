package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testLinked = &Linked{KubernetesRuntimes: []string{"cluster-a"}, ContainerRegistries: []string{"main"}}

// loadAndValidate loads one testdata file on its own and validates it,
// returning every problem as "line:col: message" (the file name dropped
// when it is the file itself).
func loadAndValidate(t testing.TB, file string) []string {
	t.Helper()
	s, err := LoadFiles("testdata", file)
	require.NotNil(t, s, "load %s: %v", file, err)
	err = Combine(err, s.Validate(testLinked))
	if err == nil {
		return nil
	}
	var es Errors
	require.True(t, errors.As(err, &es), "want Errors, got %T: %v", err, err)
	var out []string
	for _, e := range es {
		out = append(out, strings.TrimPrefix(e.Error(), file+":"))
	}
	return out
}

func TestValidFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/valid-*.pvn.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			assert.Empty(t, loadAndValidate(t, filepath.Base(f)))
		})
	}
}

func TestInvalidFiles(t *testing.T) {
	tests := map[string][]string{
		"invalid-cycle": {
			"13:30: release channel \"b\": releaseChannelStable preconditions form a cycle: a → c → b → a",
			"21:30: release channel \"d\": releaseChannelStable preconditions form a cycle: d → d",
		},
		"invalid-duplicates": {
			"11:13: runtime.custom.apply.taskConfig.program.env: variable \"PVN_X\": the PVN_ prefix is reserved for the bot",
			"12:13: runtime.custom.apply.taskConfig.program.env: invalid variable name \"1BAD\": want letters, digits and '_', not starting with a digit",
			"13:29: runtime.custom.apply.taskConfig.program.env.B: value and kubernetesSecret are exclusive; give only one",
			"16:8: runtime \"r\": duplicate parameter \"p\" (first declared at line 15)",
			"19:3: duplicate runtime \"r\" (first defined at invalid-duplicates.pvn.yaml:2:3)",
			"27:43: release channel \"one\": duplicate runtime connection \"r\"; name the connections with name:",
			"28:6: application \"app\": duplicate release channel \"one\" (first defined at line 27)",
			"31:3: duplicate application \"app\" (first defined at invalid-duplicates.pvn.yaml:25:3)",
			"37:3: service: duplicate key \"name\" (also at line 36)",
			"42:8: service \"s\": duplicate value for parameter \"p\" (also at line 41)",
			"44:11: duplicate service \"s\" in application \"app\" (first defined at invalid-duplicates.pvn.yaml:36:3)",
			"44:38: service: unknown key \"applicationx\" (want one of: name, application, runtimeConnection, customRuntime, runtimeExtension, parameters, perReleaseChannel)",
		},
		"invalid-jobs": {
			"7:7: runtime.custom.apply: taskConfig and kubernetesConfig are exclusive; give only one",
			"8:5: runtime.custom.fetch: want one of taskConfig, kubernetesConfig",
			"16:7: runtime \"local-k8s\": kubernetesConfig cannot run on the \"local\" proxy runtime; use taskConfig",
			"18:9: runtime \"local-k8s\": env S: kubernetesSecret needs a Kubernetes proxy runtime",
			"20:20: runtime \"local-k8s\": program needs cmd or entrypoint to run as a local process",
			"30:34: kubernetesConfig file jobs/missing.yaml: not found",
			"32:34: kubernetesConfig file jobs/two-docs.yaml: holds 2 Jobs; want exactly one batch/v1 Job and nothing else",
			"34:26: runtime.custom.getInfo.kubernetesConfig.type: unsupported type \"HELM\" (only KUBERNETES)",
			"34:46: kubernetesConfig file jobs/configmap.yaml: line 4: holds v1 ConfigMap; want exactly one batch/v1 Job and nothing else",
			"43:34: runtime.custom.fetch.kubernetesConfig.local.path: path \"../outside.yaml\" must be relative to the config file and stay inside the repository",
			"47:11: runtime.custom.getInfo.taskConfig.program: imageTag needs imageRegistryInfo",
			"jobs/bad-ref.yaml:9:26: runtime \"refs\": template references undeclared parameter \"nope\" (declared: tag)",
		},
		"invalid-linked": {
			"4:20: runtime \"unlinked\": proxy runtime \"cluster-b\" is not a linked Kubernetes runtime (want \"local\" or one of the bot's kubernetesRuntimes: cluster-a)",
			"9:31: runtime \"unlinked\": container registry \"elsewhere\" is not linked (the bot's containerRegistries: main)",
		},
		"invalid-parameters": {
			"34:3: service \"missing\": no value for required parameter \"commit\" of runtime \"params\" (release channels staging, production): give it one in the service's customRuntime.parameterValues or perReleaseChannel (string: TEXT), or a defaultValue in the runtime",
			"42:22: service \"typed\": parameter \"commit\" of runtime \"params\" is of type string, got an int value (want string: TEXT)",
			"43:21: service \"typed\": parameter \"count\" of runtime \"params\" is of type int, got a string value (want int: N)",
			"44:21: service \"typed\": parameter \"token\" of runtime \"params\" is of type secret, got a string value (want secret: {secretRef: {key: KEY}})",
			"45:21: service \"typed\": parameter \"label\" of runtime \"params\" is of type string, got a secret value (want string: TEXT)",
			"46:8: service \"typed\": parameter \"unknown\" is not declared by runtime \"params\" (declared: commit, count, token, label)",
			"59:10: service \"per-channel\": parameter \"count\" is not declared by runtime \"params-two\" (declared: commit, region)",
			"60:5: service \"per-channel\": duplicate perReleaseChannel entry for release channel \"production\"",
			"63:3: service \"no-values\": no value for required parameter \"commit\" of runtime \"params\" (release channel staging): give it one in the service's customRuntime.parameterValues or perReleaseChannel (string: TEXT), or a defaultValue in the runtime",
			"63:3: service \"no-values\": no value for required parameter \"commit\" of runtime \"params-two\" (release channel production): give it one in the service's customRuntime.parameterValues or perReleaseChannel (string: TEXT), or a defaultValue in the runtime",
		},
		"invalid-references": {
			"12:5: release channel \"production\": runtime connections (assets, vm) differ from release channel \"staging\" (static, vm); every channel must name the same connections",
			"15:8: release channel \"production\": unknown runtime \"nowhere\" (known: assets, vm)",
			"17:30: release channel \"production\": releaseChannelStable names unknown release channel \"qa\" of application \"my-app\" (known: production, staging)",
			"21:3: service \"my-service\": unknown application \"my-application\" (known: my-app)",
			"24:3: service \"no-connection\": runtimeConnection is required: release channel \"staging\" of application \"my-app\" has several runtime connections (static, vm)",
			"30:3: service \"bad-connection\": unknown runtime connection \"gpu\" in release channel \"staging\" of application \"my-app\" (known: static, vm)",
			"32:5: service \"bad-connection\": perReleaseChannel names unknown release channel \"prod\" of application \"my-app\" (known: staging, production)",
		},
		"invalid-structure": {
			"2:3: runtime.name: invalid name \"My_Runtime\": want lowercase letters, digits and '-', starting with a letter and not ending with '-'",
			"6:7: runtime.custom.proxyRuntime: unknown key \"namespace\" (want one of: runtime, containerOrchestration)",
			"10:11: runtime.custom.apply.taskConfig.program.cmd: want a list, got a string",
			"11:28: runtime.custom.apply.taskConfig.program.entrypoint[1]: want a string, got a list",
			"12:7: runtime.custom.apply.maxConcurrency: must not be negative, got -1",
			"13:28: runtime.custom.apply.retryableExitCodes[0]: exit code 0 out of range 1-255",
			"17:21: runtime.custom.fetch.pollInterval: want a positive duration such as 30s, 1.5s or 1h30m, got \"10\"",
			"18:32: runtime.custom.fetch.steadyStatePollInterval: want a positive duration such as 30s, 1.5s or 1h30m, got \"soon\"",
			"19:7: runtime.custom.fetch.fetchMode: unknown fetch mode \"JSON\" (want EXIT_CODE or STRUCTURED_OUTPUT)",
			"20:5: runtime.custom: unknown key \"applyID\", did you mean \"applyId\"?",
			"21:33: runtime.custom.requireApprovalBeforeApply: want true or false, got a string",
			"24:3: application.name: name \"a-very-long-application-name-that-goes-on-and-on-and-on-forever-yes\" is longer than 63 characters",
			"26:5: application.releaseChannels[0].name: invalid name \"staging-\": want lowercase letters, digits and '-', starting with a letter and not ending with '-'",
			"28:7: application.releaseChannels[0].runtimes[0]: missing required field \"runtime\"",
			"29:5: application.releaseChannels[1].runtimes: want a list, got a mapping",
			"29:5: application.releaseChannels[1]: missing required field \"name\"",
			"31:1: service: missing required field \"name\"",
			"32:3: service: unknown application \"3\" (known: a-very-long-application-name-that-goes-on-and-on-and-on-forever-yes)",
			"34:5: service.parameters[0].name: invalid parameter name \"9lives\": want letters, digits, '_' and '-', starting with a letter or '_'",
			"36:5: service.parameters[0]: string and int are exclusive; give only one",
			"37:5: service.parameters[1]: want one of string, int, secret, dockerImage, commit, blob",
			"38:5: service.parameters[1]: unknown key \"bool\" (want one of: name, description, required, string, int, secret, dockerImage, commit, blob)",
			"41:7: service.customRuntime.parameterValues[0]: want one of string, int, secret, dockerImageTag, commit, blob",
			"43:12: service.customRuntime.parameterValues[1].int: want an integer, got a string",
		},
		"invalid-syntax": {
			"6:1: invalid YAML: could not find expected ':'",
		},
		"invalid-templates": {
			"8:18: runtime \"tpl\": template references undeclared parameter \"version\" (declared: tag)",
			"9:24: runtime \"tpl\": template references undeclared parameter \"shell\" (declared: tag)",
			"12:13: runtime \"tpl\": invalid template: unclosed action",
			"13:13: runtime \"tpl\": unknown builtin .Builtins.Service (want one of: Application.Name, Commit, ReleaseChannel.Name, Runtime.Name, Service.Name)",
			"14:13: runtime \"tpl\": unknown field .Service.Name: templates see .Params.NAME and .Builtins.X",
			"16:24: runtime \"tpl\": template references undeclared parameter \"envValue\" (declared: tag)",
			"17:29: runtime \"tpl\": template references undeclared parameter \"dir\" (declared: tag)",
			"19:20: runtime \"tpl\": template references undeclared parameter \"y\" (declared: tag)",
			"23:21: runtime \"tpl\": template references undeclared parameter \"fetchTag\" (declared: tag)",
			"25:14: runtime \"tpl\": template references undeclared parameter \"commit\" (declared: tag)",
			"38:6: service \"svc\": required parameter \"must\" needs a defaultValue: nothing else can set a service parameter",
			"41:27: service \"svc\": template references undeclared parameter \"relase\" (declared: must, release)",
		},
		"invalid-top-level": {
			"1:1: releaseChannel configs are not supported: pvnbot runs custom runtimes (runtime, application and service documents)",
			"9:1: a document holds exactly one of runtime, application or service; start another document with ---",
			"12:1: want a runtime, application or service document, got a list",
			"16:3: runtime.custom: missing required field \"apply\"",
			"16:3: runtime.custom: missing required field \"proxyRuntime\"",
			"17:3: runtime: custom and extension are the same section; give only one",
		},
		"invalid-prodvana-repository": {
			"20:7: application.releaseChannels[0].runtimes[0].type: runtime links of type \"KUBERNETES\" are not supported: pvnbot runs custom runtimes (type EXTENSION, or no type)",
			"29:9: application.releaseChannels[1].preconditions[0].manualApproval.minApprovers: must not be negative, got -1",
			"37:3: service: customRuntime and runtimeExtension are the same section; give only one",
			"41:5: service \"web\": unknown runtime connection \"gpu\" in release channel \"production\" of application \"storefront\" (known: assets, vm)",
			"43:5: service.perReleaseChannel[0]: customRuntime and runtimeExtension are the same section; give only one",
		},
		"invalid-prodvana-runtime": {
			"13:11: runtime.custom.apply.taskConfig.k8s.serviceAccount: serviceAccount is also given in runtime.custom.apply.taskConfig.program.serviceAccount; give only one",
			"14:11: runtime.custom.apply.taskConfig.k8s: unknown key \"nodeSelector\" (want one of: serviceAccount)",
			"15:16: runtime.custom.apply.timeout: want a positive duration such as 30s, 1.5s or 1h30m, got \"soon\"",
			"16:23: runtime.custom.apply.maxConcurrency: want an integer, got a string",
			"19:9: runtime.custom.apply.retryPolicy: unknown key \"jitter\" (want one of: baseInterval, maxInterval, maxAttempts)",
			"23:16: runtime.custom.fetch.timeout: want a positive duration such as 30s, 1.5s or 1h30m, got \"0s\"",
			"25:22: runtime.custom.fetch.retryPolicy.maxAttempts: want an integer, got a string",
			"29:5: runtime.custom: getInfo and debug are the same section; give only one",
			"35:23: runtime.custom.parameters[0].int.defaultValue: want an integer, got a string",
		},
		"invalid-parameter-types": {
			"12:13: runtime \"k8s-deployer\": template references .Params.image.Digest: a dockerImage parameter is the full image reference, and has one field, .Tag",
			"13:13: runtime \"k8s-deployer\": template references .Params.name.Tag, but parameter \"name\" is of type string: only dockerImage parameters have a field (.Tag)",
			"20:11: runtime \"k8s-deployer\": container registry \"elsewhere\" is not linked (the bot's containerRegistries: main)",
			"24:7: runtime.custom.parameters[1].dockerImage: missing required field \"imageRegistryInfo\"",
			"41:5: service \"api\": required parameter \"image\" needs a defaultTag: nothing else can set a service parameter",
			"45:3: service \"api\": no value for required parameter \"sidecar\" of runtime \"k8s-deployer\" (release channel staging): give it one in the service's customRuntime.parameterValues or perReleaseChannel (dockerImageTag: TAG), or a defaultTag in the runtime",
			"48:7: service \"api\": parameter \"image\" of runtime \"k8s-deployer\" is of type dockerImage, got a string value (want dockerImageTag: TAG)",
			"50:7: service \"api\": parameter \"name\" of runtime \"k8s-deployer\" is of type string, got a dockerImageTag value (want string: TEXT)",
			"53:9: service.customRuntime.parameterValues[2].secret: rawSecret is refused: a secret in Git is not a secret; store it where the bot reads secrets and give secretRef: {key: KEY}",
			"58:3: service \"worker\": no value for required parameter \"sidecar\" of runtime \"k8s-deployer\" (release channel staging): give it one in the service's customRuntime.parameterValues or perReleaseChannel (dockerImageTag: TAG), or a defaultTag in the runtime",
			"61:23: service.customRuntime.parameterValues[0].dockerImageTag: want a string, got a mapping",
			"63:7: service \"worker\": parameter \"name\" of runtime \"k8s-deployer\" is of type string, got a blob value (want string: TEXT)",
			"63:7: service.customRuntime.parameterValues[1].blob: missing required field \"inlined\"",
			"63:14: service.customRuntime.parameterValues[1].blob: unknown key \"local\" (want one of: inlined)",
			"67:9: service.customRuntime.parameterValues[2].secret: give either secretRef: {key, version} or key and version, not both",
		},
		"invalid-metadata": {
			"5:5: runtime.custom: unknown key \"labels\" (want one of: type, proxyRuntime, apply, fetch, getInfo, debug, parameters, applyId, convergenceGracePeriod, requireApprovalBeforeApply)",
			"10:9: runtime.custom.apply.taskConfig: unknown key \"annotations\" (want one of: program, ttl, k8s)",
			"16:30: application.releaseChannels[0].runtimes[0]: unknown key \"labels\" (want one of: runtime, name, type)",
		},
	}
	files, err := filepath.Glob("testdata/invalid-*.pvn.yaml")
	require.NoError(t, err)
	require.Len(t, files, len(tests), "every invalid-* file has expectations")
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, want, loadAndValidate(t, name+".pvn.yaml"))
		})
	}
}
