package wrapper

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMarshalLineRoundTrip(t *testing.T) {
	in := Output{
		Version: Version, ExitCode: 7, ExecError: "",
		Stdout: []byte("out\n\x00\xff"), Stderr: []byte("err"),
		StartTimestampNs: 1700000000123456789, DurationNs: 42, StderrTruncated: 3,
	}
	line, err := in.MarshalLine()
	require.NoError(t, err)
	assert.Equal(t, byte('\n'), line[len(line)-1])
	assert.Equal(t, 1, bytes.Count(line, []byte("\n")), "one line")
	assert.Contains(t, string(line), `"stdout":"b3V0CgD/"`, "stdout is base64")

	got, ok := Parse(line)
	require.True(t, ok)
	assert.Equal(t, in, got)
}

func TestMarshalLineEmptyStreamsAreStrings(t *testing.T) {
	line, err := Output{Version: Version}.MarshalLine()
	require.NoError(t, err)
	assert.Contains(t, string(line), `"stdout":""`)
	assert.Contains(t, string(line), `"stderr":""`)
	assert.NotContains(t, string(line), "Truncated")
}

func TestParse(t *testing.T) {
	good := `{"version":"1","exitCode":2,"execError":"","stdout":"aGk=","stderr":"","startTimestampNs":5,"durationNs":6}`
	other := `{"version":"1","exitCode":0,"execError":"","stdout":"","stderr":"","startTimestampNs":1,"durationNs":1}`
	tests := map[string]struct {
		log      string
		ok       bool
		exitCode int
		stdout   string
	}{
		"only the line":               {log: good + "\n", ok: true, exitCode: 2, stdout: "hi"},
		"no trailing newline":         {log: good, ok: true, exitCode: 2, stdout: "hi"},
		"crlf":                        {log: good + "\r\n", ok: true, exitCode: 2, stdout: "hi"},
		"noise around it":             {log: "starting\n" + good + "\nwarning: x\n\n", ok: true, exitCode: 2, stdout: "hi"},
		"last wrapper line wins":      {log: other + "\n" + good + "\n", ok: true, exitCode: 2, stdout: "hi"},
		"program JSON with version":   {log: good + "\n" + `{"version":"2.3.1"}` + "\n", ok: true, exitCode: 2, stdout: "hi"},
		"empty log":                   {log: ""},
		"plain text":                  {log: "hello\nworld\n"},
		"no version":                  {log: `{"exitCode":0,"stdout":""}`},
		"no exit code":                {log: `{"version":"1","stdout":""}`},
		"bad base64":                  {log: `{"version":"1","exitCode":0,"stdout":"!!"}`},
		"truncated line":              {log: good[:len(good)-10]},
		"JSON array":                  {log: `[1,2]`},
		"version of the wrong type":   {log: `{"version":1,"exitCode":0}`},
		"exit code of the wrong type": {log: `{"version":"1","exitCode":"0"}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := Parse([]byte(tc.log))
			require.Equal(t, tc.ok, ok)
			if !ok {
				assert.Equal(t, Output{}, got)
				return
			}
			assert.Equal(t, tc.exitCode, got.ExitCode)
			assert.Equal(t, tc.stdout, string(got.Stdout))
		})
	}
}

func TestTailBuffer(t *testing.T) {
	tests := map[string]struct {
		limit   int
		writes  []string
		want    string
		dropped int64
	}{
		"under the limit":        {limit: 10, writes: []string{"abc", "de"}, want: "abcde"},
		"exactly the limit":      {limit: 5, writes: []string{"abcde"}, want: "abcde"},
		"one big write":          {limit: 4, writes: []string{"abcdefgh"}, want: "efgh", dropped: 4},
		"wraps around":           {limit: 4, writes: []string{"abc", "de", "f"}, want: "cdef", dropped: 2},
		"many small writes":      {limit: 3, writes: []string{"a", "b", "c", "d", "e", "f", "g"}, want: "efg", dropped: 4},
		"big write after wrap":   {limit: 4, writes: []string{"abcde", "123456"}, want: "3456", dropped: 7},
		"write fills to the end": {limit: 4, writes: []string{"ab", "cdef", "gh"}, want: "efgh", dropped: 4},
		"zero limit keeps none":  {limit: 0, writes: []string{"abc"}, want: "", dropped: 3},
		"nothing written":        {limit: 4, want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := newTailBuffer(tc.limit)
			for _, w := range tc.writes {
				n, err := b.Write([]byte(w))
				require.NoError(t, err)
				require.Equal(t, len(w), n)
			}
			got := b.Bytes()
			assert.NotNil(t, got)
			assert.Equal(t, tc.want, string(got))
			assert.Equal(t, tc.dropped, b.Dropped())
		})
	}
}
