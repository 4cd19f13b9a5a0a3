package local

import (
	"testing"

	"github.com/pvnbot/pvnbot/internal/proctest"
)

// TestRunHelperProcess runs, in a process of its own, a job that blocks
// until that process is killed.
func TestRunHelperProcess(t *testing.T) {
	job := proctest.HelperJob(t)
	r, _ := newRunner(t)
	_, err := r.Run(t.Context(), shSpec(job))
	t.Fatalf("the job was meant to block until this process is killed; it ended: %v", err)
}

func TestRunJobDiesWithTheBot(t *testing.T) {
	bot := proctest.StartParent(t, "TestRunHelperProcess")
	bot.Kill(t)
	proctest.AssertGone(t, bot.Job)
}
