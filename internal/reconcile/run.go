package reconcile

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pvnbot/pvnbot/internal/clock"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// runStep decides t's step and runs the jobs it leads to, synchronously.
// Called with e.mu held; returns with it released.
func (e *Engine) runStep(ctx context.Context, t *target, now time.Time) error {
	j := e.decide(t, now)
	e.mu.Unlock()
	for {
		if err := e.flush(ctx); err != nil {
			e.abort(j, err)
			return err
		}
		if j == nil {
			return nil
		}
		res, rerr := e.runner.Run(ctx, j.spec)
		e.mu.Lock()
		j = e.finish(j, res, rerr)
		e.mu.Unlock()
	}
}

// abort gives up a job whose records could not be made durable: it does
// not start, its record says so (written with the next commit that
// succeeds), and its target tries again later. j may be nil.
func (e *Engine) abort(j *job, err error) {
	if j == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock.Now()
	t := j.target
	t.job = nil
	run := j.run
	run.Finished, run.ExitCode, run.Error = now, -1, "not started: its start could not be recorded: "+err.Error()
	e.w.queueRun(run)
	if run.Action == runner.ActionApply {
		e.release(j.runtime, now)
		if t.st.Running.RunID == run.ID {
			t.st.Running = store.RunRef{}
			e.save(t)
		}
	}
	e.log.Error("reconcile step", "target", t.st.Key().String(), "run_id", run.ID, "err", err)
	if t.st.NextDue.IsZero() || t.st.NextDue.Before(now.Add(errorRetry)) {
		t.st.NextDue = now.Add(errorRetry)
		e.reschedule(t)
	}
}

// Settle takes every step due at the clock's current time, running jobs one
// at a time in the caller's goroutine, until nothing is due, and returns
// once the Reporter was told of everything. With a fake clock it makes the
// engine deterministic: advance the clock, then Settle. It must not be used
// while Run runs.
func (e *Engine) Settle(ctx context.Context) error {
	var errs []error
	for ctx.Err() == nil {
		e.mu.Lock()
		now := e.clock.Now()
		t := e.popDue(now)
		if t == nil {
			e.mu.Unlock()
			break
		}
		if err := e.runStep(ctx, t, now); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, e.flush(ctx))
	e.reports.wait()
	return errors.Join(errs...)
}

// Run drives every target until ctx is cancelled, with at most
// MaxParallelJobs jobs at once, each in its own goroutine. On return no job
// of the engine runs any more, and the Reporter was told of everything: a
// fetch or getInfo cut short by the cancellation is recorded as
// interrupted; an apply stays recorded as started, with a note, and the
// next engine resolves it.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		wg.Wait()
		if err := e.flush(context.WithoutCancel(ctx)); err != nil {
			e.log.Error("record the last state changes", "err", err)
		}
		e.reports.wait()
	}()
	var jobs []*job
	for {
		e.mu.Lock()
		now := e.clock.Now()
		jobs = jobs[:0]
		for e.running < e.maxJobs {
			t := e.popDue(now)
			if t == nil {
				break
			}
			if j := e.decide(t, now); j != nil {
				e.running++
				jobs = append(jobs, j)
			}
		}
		e.mu.Unlock()
		// The jobs' records are durable before they start: one commit
		// for every job started here.
		if err := e.flush(ctx); err != nil {
			e.log.Error("record job starts", "err", err)
			for _, j := range jobs {
				e.abort(j, err)
			}
			e.mu.Lock()
			e.running -= len(jobs)
			e.changed()
			e.mu.Unlock()
			jobs = jobs[:0]
		}
		for _, j := range jobs {
			wg.Add(1)
			go e.runAsync(ctx, j, &wg)
		}
		e.mu.Lock()
		next := e.nextDue()
		full := e.running >= e.maxJobs
		e.mu.Unlock()

		if timer != nil {
			timer.Stop()
			timer = nil
		}
		if !next.IsZero() && !full {
			timer = e.clock.AfterFunc(next.Sub(now), e.poke)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		}
	}
}

// interrupted records a job that Run's cancellation cut short: a fetch or
// getInfo is finished as interrupted; an apply stays recorded as started,
// with a note, and the next engine resolves it (fetch decides, or it runs
// again, or a backend awaits it again). cause is the cancellation's:
// runner.ErrDetached when the job was left running.
func (e *Engine) interrupted(ctx context.Context, cause error, j *job, res runner.Result, runErr error) {
	run := j.run
	res, _ = runner.NewRedactor(j.spec.Env).Result(res, runErr)
	run.OutputTail = tail(res.Stdout, res.Stderr)
	why := "interrupted: the bot stopped while it ran"
	if errors.Is(cause, runner.ErrDetached) {
		why = "detached: the bot stopped awaiting it and left it running"
	}
	if run.Action == runner.ActionApply {
		run.Note = joinNote(run.Note, why+"; the next start resolves it")
	} else {
		run.Finished, run.ExitCode, run.Error = e.clock.Now(), -1, why
	}
	if err := e.store.Save(ctx, store.Batch{Runs: []store.JobRun{run}}); err != nil {
		e.log.ErrorContext(ctx, "record interrupted job run", "target", run.Key.String(), "run_id", run.ID, "err", err)
	}
}

// next takes the steps due now until one leads to a job, and returns it.
// Called with e.mu held.
func (e *Engine) next() *job {
	now := e.clock.Now()
	for {
		t := e.popDue(now)
		if t == nil {
			return nil
		}
		if j := e.decide(t, now); j != nil {
			return j
		}
	}
}

// runAsync runs j, the jobs it leads to, and then those of the steps due,
// until none is.
func (e *Engine) runAsync(ctx context.Context, j *job, wg *sync.WaitGroup) {
	defer wg.Done()
	defer e.poke()
	for j != nil {
		res, rerr := e.runner.Run(ctx, j.spec)
		e.mu.Lock()
		if ctx.Err() != nil {
			// Shutting down: the result is not trusted.
			j.target.job = nil
			e.running--
			e.changed()
			e.mu.Unlock()
			e.interrupted(context.WithoutCancel(ctx), context.Cause(ctx), j, res, rerr)
			return
		}
		key := j.run.Key
		if j = e.finish(j, res, rerr); j == nil {
			// This goroutine's slot goes to the next step due, whose
			// records are then committed with the end of this job's.
			j = e.next()
		}
		e.mu.Unlock()
		if err := e.flush(ctx); err != nil {
			e.log.Error("record job end", "target", key.String(), "err", err)
			e.abort(j, err)
			j = nil
		}
		if j == nil {
			e.mu.Lock()
			e.running--
			e.changed()
			e.mu.Unlock()
		}
	}
}
