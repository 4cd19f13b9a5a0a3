package reconcile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// tailSize is how much of a job's output its run record keeps.
const tailSize = 4096

type verdict int

const (
	verdictConverged verdict = iota
	verdictDrift
	verdictError
)

// fetchVerdict reads fetch's result: by exit code (0 converged, 2 drift,
// else error) or, in STRUCTURED_OUTPUT mode, from its objects.
func fetchVerdict(mode config.FetchMode, desiredVersion string, res runner.Result, out store.Outcome) (verdict, string) {
	if out.Error != "" {
		return verdictError, out.Error
	}
	if mode == config.FetchModeStructuredOutput {
		if out.ExitCode != 0 {
			return verdictError, fmt.Sprintf("exit code %d (structured output fetch must exit 0)%s", out.ExitCode, firstLine(res.Stderr))
		}
		return structuredVerdict(res.Stdout, desiredVersion)
	}
	switch out.ExitCode {
	case 0:
		return verdictConverged, ""
	case runner.ExitCodeDrift:
		return verdictDrift, ""
	}
	return verdictError, fmt.Sprintf("exit code %d%s", out.ExitCode, firstLine(res.Stderr))
}

type fetchOutput struct {
	Objects []struct {
		Name       string `json:"name"`
		ObjectType string `json:"objectType"`
		Versions   []struct {
			Version string `json:"version"`
			Active  bool   `json:"active"`
			Drifted bool   `json:"drifted"`
		} `json:"versions"`
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"objects"`
}

// structuredVerdict: converged when every object SUCCEEDED with exactly one
// active version, not drifted and equal to the desired version (SPEC §3.7).
func structuredVerdict(stdout []byte, desiredVersion string) (verdict, string) {
	var fo fetchOutput
	dec := json.NewDecoder(bytes.NewReader(stdout))
	if err := dec.Decode(&fo); err != nil {
		return verdictError, fmt.Sprintf("structured output is not valid JSON: %v", err)
	}
	if len(fo.Objects) == 0 {
		return verdictDrift, "fetch reported no objects"
	}
	for _, o := range fo.Objects {
		name := o.Name
		if o.ObjectType != "" {
			name = o.ObjectType + " " + name
		}
		if o.Status != "SUCCEEDED" {
			msg := fmt.Sprintf("%s is %s", name, o.Status)
			if o.Message != "" {
				msg += ": " + o.Message
			}
			return verdictDrift, msg
		}
		var active []string
		drifted := false
		for _, v := range o.Versions {
			if v.Active {
				active = append(active, v.Version)
				drifted = drifted || v.Drifted
			}
		}
		switch {
		case len(active) != 1:
			return verdictDrift, fmt.Sprintf("%s has %d active versions %v, want exactly %q", name, len(active), active, desiredVersion)
		case drifted:
			return verdictDrift, fmt.Sprintf("%s version %s drifted", name, active[0])
		case active[0] != desiredVersion:
			return verdictDrift, fmt.Sprintf("%s is at version %s, want %s", name, active[0], desiredVersion)
		}
	}
	return verdictConverged, ""
}

// parseInfo reads getInfo's {"outputs":[{"name","text"}]}.
func parseInfo(stdout []byte) ([]store.InfoOutput, error) {
	var v struct {
		Outputs *[]store.InfoOutput `json:"outputs"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout), &v); err != nil {
		return nil, fmt.Errorf("getInfo output is not valid JSON: %w", err)
	}
	if v.Outputs == nil {
		return nil, errors.New(`getInfo output has no "outputs"`)
	}
	return *v.Outputs, nil
}

// backoff is base·2^(n-1) capped at max, minus up to 10% of jitter that is
// fixed for a target and attempt, so that tests see the same times.
func backoff(seed string, base, maxD time.Duration, n int) time.Duration {
	maxD = max(maxD, base)
	d := base
	for i := 1; i < n && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", seed, n)
	return d - time.Duration(h.Sum64()%1000)*d/10000
}

// jitter spreads a periodic interval d over ±10 %, by an amount fixed for a
// target and the time it is scheduled at, so that targets converged at one
// moment do not all poll in the same second (and tests see the same times).
func jitter(seed string, at time.Time, d time.Duration) time.Duration {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s@%d", seed, at.UnixNano())
	return d + time.Duration(int64(h.Sum64()%2001)-1000)*d/10000
}

func pollInterval(p desired.Policy) time.Duration {
	return orDefault(p.FetchPollInterval, config.DefaultFetchPollInterval)
}

func steadyInterval(p desired.Policy) time.Duration {
	return orDefault(p.SteadyStatePollInterval, config.DefaultSteadyStatePollInterval)
}

func infoInterval(p desired.Policy) time.Duration {
	return orDefault(p.GetInfoPollInterval, config.DefaultGetInfoPollInterval)
}

func graceperiod(p desired.Policy) time.Duration {
	return orDefault(p.ConvergenceGracePeriod, config.DefaultConvergenceGracePeriod)
}

func retryBase(p desired.Policy) time.Duration {
	return orDefault(p.Retry.BaseInterval, pollInterval(p))
}
func retryMax(p desired.Policy) time.Duration {
	return orDefault(p.Retry.MaxInterval, config.DefaultRetryMaxInterval)
}

// fetchRetryBase and fetchRetryMax bound the backoff after failed fetches:
// fetch's retryPolicy, else from pollInterval up to apply's maxInterval.
func fetchRetryBase(p desired.Policy) time.Duration {
	return orDefault(p.FetchRetry.BaseInterval, pollInterval(p))
}

func fetchRetryMax(p desired.Policy) time.Duration {
	return orDefault(p.FetchRetry.MaxInterval, retryMax(p))
}

// nextInfo is how long until the next getInfo of t: after a failure, while
// getInfo's retryPolicy allows, its backoff (never longer than
// pollInterval); else pollInterval.
func (t *target) nextInfo(failed bool) time.Duration {
	p := t.st.Target.Policy
	every := infoInterval(p)
	if !failed {
		t.infoFailures = 0
		return every
	}
	t.infoFailures++
	r := p.GetInfoRetry
	if r.BaseInterval <= 0 || (r.MaxAttempts > 0 && t.infoFailures > r.MaxAttempts) {
		return every
	}
	d := backoff(t.st.Key().String()+"/getInfo", r.BaseInterval, orDefault(r.MaxInterval, config.DefaultRetryMaxInterval), t.infoFailures)
	return min(d, every)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// tail keeps the end of a job's stdout and stderr.
func tail(stdout, stderr []byte) string {
	var b []byte
	b = append(b, stdout...)
	if len(stdout) > 0 && len(stderr) > 0 && stdout[len(stdout)-1] != '\n' {
		b = append(b, '\n')
	}
	b = append(b, stderr...)
	if len(b) > tailSize {
		b = b[len(b)-tailSize:]
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// describe says how a run ended, for a status message.
func describe(o store.Outcome, outputTail string) string {
	if o.Error != "" {
		return o.Error
	}
	msg := fmt.Sprintf("exit code %d", o.ExitCode)
	if line := lastLine(outputTail); line != "" {
		msg += ": " + line
	}
	return msg
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return ""
	}
	return ": " + s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
