// Package webhook takes GitHub's webhook deliveries: a Queue, which is
// go-githubapp's Scheduler, stores each delivery before the dispatcher
// acknowledges it and hands it to a bounded pool of workers (the store is
// the queue: nothing is lost when the bot stops); and thin handlers that
// parse an event, drop what is not pvnbot's, and hand the rest to a
// Deployer.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/palantir/go-githubapp/githubapp"

	"github.com/pvnbot/pvnbot/internal/clock"
	"github.com/pvnbot/pvnbot/internal/store"
)

// Store keeps the deliveries; *store.SQLite is one.
type Store interface {
	// RecordDelivery stores a delivery; false when its ID was seen before.
	RecordDelivery(ctx context.Context, d store.Delivery) (bool, error)
	// DeliveryDone records that a delivery was processed.
	DeliveryDone(ctx context.Context, id string, at time.Time) error
	// DeliveryFailed records a failed attempt, to be retried at retryAt, or
	// given up with a zero retryAt.
	DeliveryFailed(ctx context.Context, id string, at time.Time, errMsg string, retryAt time.Time) error
	// PendingDeliveries lists the deliveries neither done nor given up.
	PendingDeliveries(ctx context.Context) ([]store.Delivery, error)
}

// Permanent marks an error that retrying cannot fix (a payload that does
// not parse): the delivery is given up at once.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// QueueOptions tune a Queue.
type QueueOptions struct {
	Workers     int           // deliveries processed at once; default 4
	MaxAttempts int           // attempts before a delivery is given up; default 8
	BaseRetry   time.Duration // first retry after; doubles each time; default 2s
	MaxRetry    time.Duration // default 5m
	// Timeout bounds the processing of one delivery; default 10m.
	Timeout time.Duration
	Clock   clock.Clock
	Logger  *slog.Logger
	// Observe, when set, is told of each delivery's outcome: received,
	// duplicate, failed (an attempt), given_up.
	Observe func(event, outcome string)
}

// Queue stores deliveries as they arrive and processes them in order per
// repository, several repositories at once.
type Queue struct {
	store    Store
	opts     QueueOptions
	clock    clock.Clock
	log      *slog.Logger
	handlers map[string]githubapp.EventHandler

	mu      sync.Mutex
	repos   map[string]*repoQueue // deliveries not processed yet, by repository
	ready   []*repoQueue          // repositories whose first delivery may be processed now, in turn
	busy    int                   // deliveries being processed
	wake    chan struct{}
	stopped bool
	idle    *sync.Cond
}

type repoQueue struct {
	name    string
	items   []store.Delivery
	active  bool // its first delivery is being processed
	inReady bool
	timer   clock.Timer // until its first delivery's next attempt
}

// NewQueue returns a Queue dispatching to handlers by event type.
func NewQueue(s Store, opts QueueOptions, handlers ...githubapp.EventHandler) *Queue {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	if opts.BaseRetry <= 0 {
		opts.BaseRetry = 2 * time.Second
	}
	if opts.MaxRetry <= 0 {
		opts.MaxRetry = 5 * time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Minute
	}
	q := &Queue{
		store: s, opts: opts, clock: opts.Clock, log: opts.Logger,
		handlers: map[string]githubapp.EventHandler{}, repos: map[string]*repoQueue{},
		wake: make(chan struct{}, 1),
	}
	if q.clock == nil {
		q.clock = clock.Real{}
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if q.opts.Observe == nil {
		q.opts.Observe = func(string, string) {}
	}
	q.idle = sync.NewCond(&q.mu)
	for _, h := range handlers {
		for _, event := range h.Handles() {
			q.handlers[event] = h
		}
	}
	return q
}

// Handlers are the handlers to give the dispatcher: those the Queue was
// made with, so that only events pvnbot handles are stored.
func (q *Queue) Handlers() []githubapp.EventHandler {
	seen := map[githubapp.EventHandler]bool{}
	var out []githubapp.EventHandler
	for _, h := range q.handlers {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// Events is the events the queue has handlers for, sorted.
func (q *Queue) Events() []string {
	out := make([]string, 0, len(q.handlers))
	for event := range q.handlers {
		out = append(out, event)
	}
	slices.Sort(out)
	return out
}

var _ githubapp.Scheduler = (*Queue)(nil)

// Schedule implements githubapp.Scheduler: it stores the delivery and
// returns, so that the dispatcher acknowledges it once it is durable. A
// delivery ID seen before (GitHub's redelivery keeps it) is acknowledged
// and not processed again. A delivery that cannot be stored is an error:
// GitHub is told it failed, and can redeliver it.
func (q *Queue) Schedule(ctx context.Context, d githubapp.Dispatch) error {
	delivery := store.Delivery{
		ID: d.DeliveryID, Event: d.EventType, Repo: repoOf(d.Payload), Payload: d.Payload, ReceivedAt: q.clock.Now(),
	}
	isNew, err := q.store.RecordDelivery(context.WithoutCancel(ctx), delivery)
	if err != nil {
		return fmt.Errorf("store delivery %s: %w", d.DeliveryID, err)
	}
	log := q.log.With("delivery_id", d.DeliveryID, "event", d.EventType, "repo", delivery.Repo)
	if !isNew {
		q.opts.Observe(d.EventType, "duplicate")
		log.Info("delivery seen before: acknowledged, not processed again")
		return nil
	}
	q.opts.Observe(d.EventType, "received")
	log.Debug("delivery stored")
	q.add(delivery)
	return nil
}

// repoOf reads the repository a payload concerns; "" for one about an
// installation as a whole.
func repoOf(payload []byte) string {
	var p struct {
		Repository struct {
			FullName string `json:"full_name"`
		} `json:"repository"`
	}
	_ = json.Unmarshal(payload, &p)
	return p.Repository.FullName
}

// add queues a delivery behind those of its repository.
func (q *Queue) add(d store.Delivery) {
	q.mu.Lock()
	defer q.mu.Unlock()
	rq := q.repos[d.Repo]
	if rq == nil {
		rq = &repoQueue{name: d.Repo}
		q.repos[d.Repo] = rq
	}
	rq.items = append(rq.items, d)
	if len(rq.items) == 1 {
		q.schedule(rq)
	}
}

// schedule makes rq ready when its first delivery is due, now or at its next
// attempt. Called with q.mu held.
func (q *Queue) schedule(rq *repoQueue) {
	if rq.active || rq.inReady || len(rq.items) == 0 {
		return
	}
	if rq.timer != nil {
		rq.timer.Stop()
		rq.timer = nil
	}
	if wait := rq.items[0].NextAttempt.Sub(q.clock.Now()); wait > 0 {
		rq.timer = q.clock.AfterFunc(wait, func() {
			q.mu.Lock()
			defer q.mu.Unlock()
			rq.timer = nil
			q.schedule(rq)
		})
		return
	}
	rq.inReady = true
	q.ready = append(q.ready, rq)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run processes the stored deliveries not yet processed, then those that
// arrive, until ctx is done; it returns once the deliveries being processed
// are done (their processing is cut short by ctx, recorded as a failed
// attempt, and tried again at the next start).
func (q *Queue) Run(ctx context.Context) error {
	pending, err := q.store.PendingDeliveries(ctx)
	if err != nil {
		return fmt.Errorf("resume deliveries: %w", err)
	}
	for _, d := range pending {
		q.add(d)
	}
	if len(pending) > 0 {
		q.log.Info("resuming deliveries not processed before the restart", "count", len(pending))
	}
	var wg sync.WaitGroup
	for range q.opts.Workers {
		wg.Go(func() { q.work(ctx) })
	}
	<-ctx.Done()
	q.mu.Lock()
	q.stopped = true
	for _, rq := range q.repos {
		if rq.timer != nil {
			rq.timer.Stop()
		}
	}
	q.idle.Broadcast()
	q.mu.Unlock()
	wg.Wait()
	return nil
}

func (q *Queue) work(ctx context.Context) {
	for {
		q.mu.Lock()
		for len(q.ready) == 0 && ctx.Err() == nil {
			q.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-q.wake:
			}
			q.mu.Lock()
		}
		if ctx.Err() != nil {
			q.mu.Unlock()
			return
		}
		rq := q.ready[0]
		q.ready = q.ready[1:]
		rq.inReady = false
		rq.active = true
		q.busy++
		d := rq.items[0]
		if len(q.ready) > 0 {
			select {
			case q.wake <- struct{}{}:
			default:
			}
		}
		q.mu.Unlock()

		retry := q.process(ctx, d)

		q.mu.Lock()
		rq.active = false
		q.busy--
		if retry.IsZero() {
			rq.items = rq.items[1:]
		} else {
			// The repository waits: its deliveries stay in order.
			rq.items[0].NextAttempt = retry
			rq.items[0].Attempts++
		}
		if len(rq.items) == 0 {
			delete(q.repos, rq.name)
		} else {
			q.schedule(rq)
		}
		q.idle.Broadcast()
		q.mu.Unlock()
	}
}

// process handles one delivery and records how it went; it returns when to
// try again, zero when it is done or given up.
func (q *Queue) process(ctx context.Context, d store.Delivery) (retry time.Time) {
	log := q.log.With("delivery_id", d.ID, "event", d.Event, "repo", d.Repo)
	err := q.handle(ctx, d)
	now := q.clock.Now()
	rec := context.WithoutCancel(ctx)
	if err == nil {
		if err := q.store.DeliveryDone(rec, d.ID, now); err != nil {
			log.Error("record delivery processed", "err", err)
		}
		return time.Time{}
	}
	attempts := d.Attempts + 1
	var permanent permanentError
	q.opts.Observe(d.Event, "failed")
	if errors.As(err, &permanent) || attempts >= q.opts.MaxAttempts {
		q.opts.Observe(d.Event, "given_up")
		log.Error("delivery given up", "err", err, "attempts", attempts)
		if err := q.store.DeliveryFailed(rec, d.ID, now, err.Error(), time.Time{}); err != nil {
			log.Error("record delivery given up", "err", err)
		}
		return time.Time{}
	}
	wait := q.opts.BaseRetry
	for i := 1; i < attempts && wait < q.opts.MaxRetry; i++ {
		wait *= 2
	}
	retry = now.Add(min(wait, q.opts.MaxRetry))
	log.Warn("delivery failed; trying again", "err", err, "attempts", attempts, "retry_at", retry.UTC().Format(time.RFC3339))
	if err := q.store.DeliveryFailed(rec, d.ID, now, err.Error(), retry); err != nil {
		log.Error("record delivery attempt", "err", err)
	}
	return retry
}

// handle runs the delivery's handler, a panic being an error.
func (q *Queue) handle(ctx context.Context, d store.Delivery) (err error) {
	h := q.handlers[d.Event]
	if h == nil {
		return Permanent(fmt.Errorf("no handler for %s events", d.Event))
	}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, deliveryKey{}, d.ID), q.opts.Timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return h.Handle(ctx, d.Event, d.ID, d.Payload)
}

type deliveryKey struct{}

// DeliveryID is the ID of the delivery whose processing ctx is; empty
// outside one. What a handler calls logs it as delivery_id.
func DeliveryID(ctx context.Context) string {
	id, _ := ctx.Value(deliveryKey{}).(string)
	return id
}

// Wait returns once no delivery is queued or being processed, or ctx is
// done; for tests and benchmarks.
func (q *Queue) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		q.mu.Lock()
		for (len(q.repos) > 0 || q.busy > 0) && !q.stopped && ctx.Err() == nil {
			q.idle.Wait()
		}
		q.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		q.mu.Lock()
		q.idle.Broadcast()
		q.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
