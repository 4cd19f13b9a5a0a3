package wrapper

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pvnbot/pvnbot/internal/proctest"
)

// TestKillWithParentHelper runs, in a process of its own, a job that blocks
// until it is killed. KillWithParent is taken from the environment.
func TestKillWithParentHelper(t *testing.T) {
	job := proctest.HelperJob(t)
	opts := Options{KillWithParent: os.Getenv("KILL_WITH_PARENT") == "1"}
	_, err := Exec(t.Context(), opts, sh(job))
	t.Fatalf("the job was meant to block until this process is killed; it ended: %v", err)
}

func TestExecKillWithParent(t *testing.T) {
	tests := map[string]struct {
		killWithParent bool
		wantGone       bool
	}{
		"KillWithParent: the job dies with the process that started it": {killWithParent: true, wantGone: true},
		"without it the job outlives that process":                      {killWithParent: false, wantGone: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			parent := proctest.StartParent(t, "TestKillWithParentHelper", "KILL_WITH_PARENT="+map[bool]string{true: "1"}[tc.killWithParent])
			parent.Kill(t)
			if tc.wantGone {
				proctest.AssertGone(t, parent.Job)
			} else {
				// The job has been reparented by the time the parent can
				// be waited for, and nothing else signals it.
				assert.True(t, proctest.Alive(parent.Job), "job %d outlived its parent", parent.Job)
			}
		})
	}
}
