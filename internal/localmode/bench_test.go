package localmode_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/gitrepo"
	"github.com/pvnbot/pvnbot/internal/gitrepo/gitrepotest"
	"github.com/pvnbot/pvnbot/internal/links"
	"github.com/pvnbot/pvnbot/internal/localmode"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/runner/local"
	"github.com/pvnbot/pvnbot/internal/store"
)

// benchParallel is the number of jobs run at once, by the engine and by
// xargs -P alike.
const benchParallel = 16

// manyTargets is a repository of n services of one application with one
// release channel, on a runtime whose apply is `true` and has no fetch: each
// target converges with one process.
func manyTargets(b *testing.B, n int) (*gitrepotest.Repo, string) {
	var sb strings.Builder
	sb.WriteString("runtime:\n  name: noop\n  custom:\n    proxyRuntime: {runtime: local}\n    apply:\n      taskConfig: {program: {entrypoint: [\"true\"]}}\n")
	sb.WriteString("---\napplication:\n  name: app\n  releaseChannels:\n  - name: prod\n    runtimes: [{runtime: noop}]\n")
	for i := range n {
		fmt.Fprintf(&sb, "---\nservice: {name: s%d, application: app}\n", i)
	}
	repo := gitrepotest.New(b)
	repo.Write("app.pvn.yaml", sb.String())
	return repo, repo.Commit(fmt.Sprintf("%d services", n))
}

// converged counts converged targets and says when all are.
type converged struct {
	want int
	n    int
	done chan struct{}
}

func (c *converged) TargetChanged(_ context.Context, st store.TargetState) {
	if st.Status == store.StatusConverged {
		if c.n++; c.n == c.want {
			close(c.done)
		}
	}
}

// countingStore counts the engine's commits.
type countingStore struct {
	store.Store
	commits, states, runs atomic.Int64
}

func (c *countingStore) Save(ctx context.Context, b store.Batch) error {
	c.commits.Add(1)
	c.states.Add(int64(len(b.States)))
	c.runs.Add(int64(len(b.Runs)))
	return c.Store.Save(ctx, b)
}

// cpuTime is the CPU time used so far by this process and by its children
// that were waited for (and theirs).
func cpuTime(b *testing.B) time.Duration {
	var self, children syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &self))
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children))
	var d time.Duration
	for _, tv := range []syscall.Timeval{self.Utime, self.Stime, children.Utime, children.Stime} {
		d += time.Duration(tv.Nano())
	}
	return d
}

// BenchmarkConverge1000VersusShell converges 1,000 targets whose apply is
// `true` through the engine, the local runner and the SQLite state file, and
// runs the same 1,000 processes with `xargs -P` at the same concurrency, in
// one run. ratio is engine time over shell time (goal ≤ 1.05); cpu-ratio
// compares the CPU time both used, which other load on the machine disturbs
// less than wall time.
func BenchmarkConverge1000VersusShell(b *testing.B) {
	b.Run("synchronous=NORMAL", func(b *testing.B) { converge1000VersusShell(b, store.WithSynchronousNormal()) })
	b.Run("synchronous=FULL", func(b *testing.B) { converge1000VersusShell(b) })
}

// converge1000VersusShell is BenchmarkConverge1000VersusShell with the
// state file opened with opts; `bot run` uses synchronous=NORMAL.
func converge1000VersusShell(b *testing.B, opts ...store.SQLiteOption) {
	const n = 1000
	repo, sha := manyTargets(b, n)
	targets, problems, err := localmode.Render(repo.Open(), sha, links.Links{})
	require.NoError(b, err)
	require.Empty(b, problems)
	ctx := context.Background()
	var engineTime, shellTime, engineCPU, shellCPU time.Duration
	var counted countingStore
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		st, err := store.OpenSQLite(ctx, filepath.Join(dir, "state.db"), opts...)
		require.NoError(b, err)
		worktrees := gitrepo.NewWorktrees(repo.Open(), filepath.Join(dir, "worktrees"))
		report := &converged{want: n, done: make(chan struct{})}
		counted.Store = st.Repo("bench")
		eng, err := reconcile.New(ctx, reconcile.Options{
			Runner: local.New(worktrees), Store: &counted, Reporter: report, MaxParallelJobs: benchParallel,
		})
		require.NoError(b, err)
		b.StartTimer()

		start, cpu := time.Now(), cpuTime(b)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- eng.Run(runCtx) }()
		require.NoError(b, eng.SetDesired(ctx, sha, targets))
		<-report.done
		engineTime, engineCPU = engineTime+time.Since(start), engineCPU+cpuTime(b)-cpu
		cancel()
		require.NoError(b, <-done)

		start, cpu = time.Now(), cpuTime(b)
		shell := exec.Command("sh", "-c", fmt.Sprintf("seq %d | xargs -P %d -n 1 true", n, benchParallel))
		out, err := shell.CombinedOutput()
		require.NoError(b, err, string(out))
		shellTime, shellCPU = shellTime+time.Since(start), shellCPU+cpuTime(b)-cpu
		b.StopTimer()
		require.NoError(b, st.Close())
		b.StartTimer()
	}
	b.ReportMetric(float64(engineTime.Milliseconds())/float64(b.N), "engine-ms/op")
	b.ReportMetric(float64(shellTime.Milliseconds())/float64(b.N), "shell-ms/op")
	b.ReportMetric(engineTime.Seconds()/shellTime.Seconds(), "ratio")
	b.ReportMetric(engineCPU.Seconds()/shellCPU.Seconds(), "cpu-ratio")
	b.ReportMetric(float64(counted.commits.Load())/float64(b.N), "commits/op")
	b.ReportMetric(float64(counted.states.Load()+counted.runs.Load())/float64(b.N), "rows/op")
}

// BenchmarkPeakRSS10000 runs `bot run --once` on 10,000 targets and reports
// the process's peak resident set size.
func BenchmarkPeakRSS10000(b *testing.B) {
	const n = 10000
	repo, _ := manyTargets(b, n)
	for b.Loop() {
		b.StopTimer()
		state := filepath.Join(b.TempDir(), "state.db")
		b.StartTimer()
		cmd := exec.Command(botBin, "run", "--repo", repo.Dir, "--state", state, "--once")
		cmd.Stdout, cmd.Stderr = nil, os.Stderr
		require.NoError(b, cmd.Run())
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB")
	}
}

// BenchmarkBotRunOnce2000VersusXargs runs `bot run --once` as a whole
// process on 2,000 services whose apply is /bin/true, at maxConcurrency 4,
// from a new state file; and, in the same run, `xargs -P 4 -n 1 /bin/true`
// over 2,000 lines. ratio is the bot's wall time over xargs's (goal ≤ 1.3);
// cpu-ratio compares the CPU time both used.
func BenchmarkBotRunOnce2000VersusXargs(b *testing.B) {
	const n, parallel = 2000, 4
	var sb strings.Builder
	fmt.Fprintf(&sb, "runtime:\n  name: noop\n  custom:\n    proxyRuntime: {runtime: local}\n    apply:\n      taskConfig: {program: {cmd: [\"/bin/true\"]}}\n      maxConcurrency: %d\n", parallel)
	sb.WriteString("---\napplication:\n  name: app\n  releaseChannels:\n  - name: prod\n    runtimes: [{runtime: noop}]\n")
	repo := gitrepotest.New(b)
	repo.Write("app.pvn.yaml", sb.String())
	for i := range n {
		repo.Write(fmt.Sprintf("services/s%d.pvn.yaml", i), fmt.Sprintf("service: {name: s%d, application: app}\n", i))
	}
	repo.Commit(fmt.Sprintf("%d services", n))
	var botTime, xargsTime, botCPU, xargsCPU time.Duration
	for b.Loop() {
		b.StopTimer()
		state := filepath.Join(b.TempDir(), "state.db")
		b.StartTimer()
		start, cpu := time.Now(), cpuTime(b)
		out, err := exec.Command(botBin, "run", "--repo", repo.Dir, "--state", state, "--once").CombinedOutput()
		require.NoError(b, err, string(out))
		botTime, botCPU = botTime+time.Since(start), botCPU+cpuTime(b)-cpu
		require.Contains(b, string(out), fmt.Sprintf("%d converged", n))

		start, cpu = time.Now(), cpuTime(b)
		shell := exec.Command("sh", "-c", fmt.Sprintf("seq %d | xargs -P %d -n 1 /bin/true", n, parallel))
		out, err = shell.CombinedOutput()
		require.NoError(b, err, string(out))
		xargsTime, xargsCPU = xargsTime+time.Since(start), xargsCPU+cpuTime(b)-cpu
	}
	b.ReportMetric(float64(botTime.Milliseconds())/float64(b.N), "bot-ms/op")
	b.ReportMetric(float64(xargsTime.Milliseconds())/float64(b.N), "xargs-ms/op")
	b.ReportMetric(botTime.Seconds()/xargsTime.Seconds(), "ratio")
	b.ReportMetric(botCPU.Seconds()/xargsCPU.Seconds(), "cpu-ratio")
}
