package localmode

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/store"
)

// What jobs print reaches the terminal through bot status and bot run:
// control characters in it are escaped, so that a job cannot clear the
// screen, move the cursor or retitle the window. JSON stays as it is.
func TestTextOutputEscapesControlCharacters(t *testing.T) {
	hostile := "done \x1b[2J\x1b]0;pwned\x07 \r\u009b31m \xff tab\there"
	st := store.TargetState{
		Target:  desired.Target{Key: desired.Key{Application: "shop", Service: "web", ReleaseChannel: "staging"}, Commit: "abc"},
		Status:  store.StatusFailed,
		Message: "apply failed: exit code 1: " + hostile,
		Info:    []store.InfoOutput{{Name: "\x1b[31mURL", Text: hostile}},
	}
	const want = `done \x1b[2J\x1b]0;pwned\x07 \x0d\u009b31m \xff tab\x09here`

	var table bytes.Buffer
	require.NoError(t, WriteTable(&table, []store.TargetState{st}))
	assertNoControls(t, table.String())
	assert.Contains(t, table.String(), "apply failed: exit code 1: "+want)
	assert.Contains(t, table.String(), `\x1b[31mURL=`+want)

	for _, terminal := range []bool{false, true} {
		var out bytes.Buffer
		p := NewProgress(&out, terminal)
		p.now = func() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) }
		p.TargetChanged(context.Background(), st)
		p.Note("commit abc has invalid configs:\n  a.pvn.yaml:1:1: unknown key %q", "\x1b[2Jx")
		assertNoControls(t, out.String())
		assert.Contains(t, out.String(), want)
		assert.Contains(t, out.String(), "\n  a.pvn.yaml:1:1", "a note keeps its lines")
	}

	var js bytes.Buffer
	require.NoError(t, WriteJSON(&js, []store.TargetState{st}))
	var back []TargetJSON
	require.NoError(t, json.Unmarshal(js.Bytes(), &back))
	assert.Contains(t, back[0].Message, "done \x1b[2J\x1b]0;pwned\x07 \r\u009b31m", "JSON carries the text as it is")
}

func assertNoControls(t *testing.T, s string) {
	t.Helper()
	for _, r := range s {
		if r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f)) {
			t.Fatalf("control character %U in %q", r, s)
		}
	}
	assert.True(t, utf8.ValidString(s), "valid UTF-8: %q", s)
}
