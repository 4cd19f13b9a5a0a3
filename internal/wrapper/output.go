// Package wrapper runs a program with its stdout and stderr captured apart
// and describes how it ended as one JSON line: the format written by the
// pvn-wrapper binary inside Kubernetes Jobs and read back by the Kubernetes
// runner from the pod's log. The local runner uses Exec directly.
package wrapper

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Version is the version of the output format written by Exec and accepted
// by Parse. pvn-wrapper reports it in every line.
const Version = "1"

// Output is how a wrapped program ended. Stdout and Stderr hold the tail of
// each stream; StdoutTruncated and StderrTruncated count the bytes dropped
// from their start.
type Output struct {
	Version          string `json:"version"`
	ExitCode         int    `json:"exitCode"`
	ExecError        string `json:"execError"`
	Stdout           []byte `json:"stdout"`
	Stderr           []byte `json:"stderr"`
	StartTimestampNs int64  `json:"startTimestampNs"`
	DurationNs       int64  `json:"durationNs"`
	StdoutTruncated  int64  `json:"stdoutTruncated,omitempty"`
	StderrTruncated  int64  `json:"stderrTruncated,omitempty"`
}

// MarshalLine encodes o as one JSON line, newline included.
func (o Output) MarshalLine() ([]byte, error) {
	if o.Stdout == nil {
		o.Stdout = []byte{}
	}
	if o.Stderr == nil {
		o.Stderr = []byte{}
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("encode wrapper output: %w", err)
	}
	return append(b, '\n'), nil
}

// wireOutput tells a missing exit code from a zero one.
type wireOutput struct {
	Output
	ExitCode *int `json:"exitCode"`
}

// Parse finds the wrapper's line in a pod log: the last line that decodes as
// an Output carrying a version and an exit code. Lines the program or the
// container runtime printed around it are skipped. ok is false when no line
// qualifies.
func Parse(log []byte) (out Output, ok bool) {
	for end := len(log); end > 0; {
		start := bytes.LastIndexByte(log[:end], '\n') + 1
		line := bytes.TrimSpace(log[start:end])
		end = start - 1
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var w wireOutput
		if json.Unmarshal(line, &w) != nil || w.Version == "" || w.ExitCode == nil {
			continue
		}
		w.Output.ExitCode = *w.ExitCode
		return w.Output, true
	}
	return Output{}, false
}
