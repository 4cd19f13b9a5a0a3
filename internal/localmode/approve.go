package localmode

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pvnbot/pvnbot/internal/desired"
	"github.com/pvnbot/pvnbot/internal/reconcile"
	"github.com/pvnbot/pvnbot/internal/runner"
	"github.com/pvnbot/pvnbot/internal/store"
)

// Approvals reach the engine through an inbox folder beside the state file:
// `bot approve` writes a request there, durably, and whichever process
// holds the state's lock hands it to its engine — the running `bot run`
// within its poll interval, or `bot approve` itself when no `bot run` runs.
// The engine's Approve is the one place that decides what an approval
// means, and the running engine is the only one that can wake the targets
// it approves.

// ApproveOptions is one `bot approve`.
type ApproveOptions struct {
	StatePath string
	Request   reconcile.ApprovalRequest
	// Wait bounds how long to wait for a running `bot run` to take the
	// approval; default 30s.
	Wait time.Duration
}

// ApproveResult is what happened to an approval.
type ApproveResult struct {
	// Approved lists the targets approved.
	Approved []desired.Key
	// Pending is true when a running `bot run` did not answer in time; the
	// request stays in the inbox and is taken by the next process that can.
	Pending bool
}

// request is an approval in the inbox; answer is how it was taken.
type request struct {
	ID string `json:"id"`
	reconcile.ApprovalRequest
}

type answer struct {
	Approved []desired.Key `json:"approved,omitempty"`
	Refused  string        `json:"refused,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// RefusedError is an approval that was not taken, with the reason.
type RefusedError = reconcile.RefusedError

// Approve records an approval of the waiting targets of one release
// channel, as SPEC §6's `bot approve`. Unknown names and channels where
// nothing waits are refused with a *RefusedError.
func Approve(ctx context.Context, opts ApproveOptions) (ApproveResult, error) {
	if opts.Wait <= 0 {
		opts.Wait = 30 * time.Second
	}
	if _, err := os.Stat(opts.StatePath); err != nil {
		return ApproveResult{}, fmt.Errorf("no state at %s: has `bot run` run on this repository? (%w)", opts.StatePath, err)
	}
	st, err := store.OpenSQLite(ctx, opts.StatePath)
	if err != nil {
		return ApproveResult{}, err
	}
	states, err := st.LoadTargets(ctx)
	st.Close()
	if err != nil {
		return ApproveResult{}, err
	}
	if err := checkNames(states, opts.Request); err != nil {
		return ApproveResult{}, err
	}
	dir := inboxDir(opts.StatePath)
	id, err := putRequest(dir, opts.Request)
	if err != nil {
		return ApproveResult{}, err
	}
	deadline := time.Now().Add(opts.Wait)
	for {
		if a, ok, err := takeAnswer(dir, id); err != nil || ok {
			if err != nil {
				return ApproveResult{}, err
			}
			return a.result()
		}
		if lock, err := tryLock(opts.StatePath, 0); err == nil {
			err = approveHere(ctx, opts.StatePath, dir)
			lock.release()
			if err != nil {
				return ApproveResult{}, err
			}
			continue
		} else if !errors.Is(err, errLocked) {
			return ApproveResult{}, err
		}
		if !time.Now().Before(deadline) {
			return ApproveResult{Pending: true}, nil
		}
		select {
		case <-ctx.Done():
			return ApproveResult{Pending: true}, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (a answer) result() (ApproveResult, error) {
	switch {
	case a.Refused != "":
		return ApproveResult{}, &RefusedError{Reason: a.Refused}
	case a.Error != "" && len(a.Approved) == 0:
		return ApproveResult{}, errors.New(a.Error)
	case a.Error != "":
		return ApproveResult{Approved: a.Approved}, errors.New(a.Error)
	}
	return ApproveResult{Approved: a.Approved}, nil
}

// approveHere takes the inbox with an engine of its own, when no `bot run`
// holds the state: the approvals are stored, and the next `bot run` finds
// them when it looks at the waiting targets on start.
func approveHere(ctx context.Context, statePath, dir string) error {
	st, err := store.OpenSQLite(ctx, statePath)
	if err != nil {
		return err
	}
	defer st.Close()
	eng, err := reconcile.New(ctx, reconcile.Options{Runner: noJobs{}, Store: st})
	if err != nil {
		return err
	}
	return processInbox(ctx, dir, eng)
}

// noJobs is the Runner of an engine that only takes approvals.
type noJobs struct{}

func (noJobs) Run(context.Context, runner.Spec) (runner.Result, error) {
	return runner.Result{}, errors.New("bot approve runs no jobs")
}

// approver is the engine as the inbox sees it.
type approver interface {
	Approve(ctx context.Context, req reconcile.ApprovalRequest) ([]desired.Key, error)
}

// processInbox hands every request of the inbox to eng, oldest first, and
// answers each. An answer is written before its request is removed, so a
// crash in between takes the request again (and refuses it as approved
// already) rather than losing it.
func processInbox(ctx context.Context, dir string, eng approver) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read approval inbox: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".answer.json") {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
				_ = os.Remove(filepath.Join(dir, name))
			}
			continue
		}
		if !strings.HasSuffix(name, ".request.json") {
			continue
		}
		path := filepath.Join(dir, name)
		var req request
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, &req)
		}
		var a answer
		if err != nil {
			a.Error = fmt.Sprintf("unreadable approval request %s: %v", name, err)
		} else {
			keys, aerr := eng.Approve(ctx, req.ApprovalRequest)
			a.Approved = keys
			var refused *RefusedError
			switch {
			case errors.As(aerr, &refused):
				a.Refused = refused.Reason
			case aerr != nil:
				a.Error = aerr.Error()
			}
		}
		id := strings.TrimSuffix(name, ".request.json")
		if err := writeFileSync(filepath.Join(dir, id+".answer.json"), a); err != nil {
			return err
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove approval request: %w", err)
		}
	}
	return nil
}

func inboxDir(statePath string) string { return statePath + ".approvals" }

func putRequest(dir string, req reconcile.ApprovalRequest) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create approval inbox: %w", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := fmt.Sprintf("%020d-%s", time.Now().UnixNano(), hex.EncodeToString(b[:]))
	if err := writeFileSync(filepath.Join(dir, id+".request.json"), request{ID: id, ApprovalRequest: req}); err != nil {
		return "", err
	}
	return id, nil
}

func takeAnswer(dir, id string) (answer, bool, error) {
	path := filepath.Join(dir, id+".answer.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return answer{}, false, nil
	}
	if err != nil {
		return answer{}, false, fmt.Errorf("read approval answer: %w", err)
	}
	var a answer
	if err := json.Unmarshal(data, &a); err != nil {
		return answer{}, false, fmt.Errorf("read approval answer: %w", err)
	}
	_ = os.Remove(path)
	return a, true, nil
}

// writeFileSync writes v as JSON beside path, syncs it and renames it into
// place: readers see the whole file or none.
func writeFileSync(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// checkNames refuses an approval naming an application, channel or
// service that has no target.
func checkNames(states []store.TargetState, req reconcile.ApprovalRequest) error {
	apps, channels, services := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, st := range live(states) {
		k := st.Key()
		apps[k.Application] = true
		if k.Application == req.Application {
			channels[k.ReleaseChannel] = true
			if k.ReleaseChannel == req.ReleaseChannel {
				services[k.Service] = true
			}
		}
	}
	switch {
	case !apps[req.Application]:
		return &RefusedError{Reason: fmt.Sprintf("unknown application %q (known: %s)", req.Application, names(apps))}
	case !channels[req.ReleaseChannel]:
		return &RefusedError{Reason: fmt.Sprintf("application %s has no release channel %q (channels: %s)", req.Application, req.ReleaseChannel, names(channels))}
	}
	var unknown []string
	for _, s := range req.Services {
		if !services[s] {
			unknown = append(unknown, fmt.Sprintf("%q", s))
		}
	}
	if len(unknown) > 0 {
		return &RefusedError{Reason: fmt.Sprintf("%s/%s has no service %s (services: %s)", req.Application, req.ReleaseChannel, strings.Join(unknown, ", "), names(services))}
	}
	return nil
}

func names(set map[string]bool) string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(slices.Compact(out), ", ")
}
