package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/pvnbot/pvnbot/internal/desired"
)

// Memory is a DB held in memory, for tests. Records are kept encoded as
// JSON, so what comes back is a copy and every type is proven to survive the
// encoding a durable backend uses.
type Memory struct {
	mu     sync.Mutex
	repos  map[string]*memRepo
	runSeq int64 // shared, as SQLite's rowid: only the order matters
	ingSeq int64
}

type memRepo struct {
	m         *Memory
	name      string
	targets   map[desired.Key][]byte
	runs      map[string]memRun
	approvals []memApproval
	ingested  []memIngest
}

type memRun struct {
	seq  int64
	data []byte
}

type memApproval struct {
	id   string
	data []byte
}

type memIngest struct {
	seq         int64
	branch, sha string
	problems    string
}

var (
	_ DB    = (*Memory)(nil)
	_ Store = (*memRepo)(nil)
)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{repos: map[string]*memRepo{}} }

// Repo implements DB.
func (m *Memory) Repo(name string) Store {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repos[name]
	if r == nil {
		r = &memRepo{m: m, name: name, targets: map[desired.Key][]byte{}, runs: map[string]memRun{}}
		m.repos[name] = r
	}
	return r
}

// Repos implements DB.
func (m *Memory) Repos(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name, r := range m.repos {
		if len(r.targets) > 0 || len(r.ingested) > 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Close implements DB; it does nothing.
func (m *Memory) Close() error { return nil }

// LoadTargets implements Store.
func (r *memRepo) LoadTargets(ctx context.Context) ([]TargetState, error) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	out := make([]TargetState, 0, len(r.targets))
	for key, data := range r.targets {
		var st TargetState
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, fmt.Errorf("decode target %s: %w", key, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// SaveTarget implements Store.
func (r *memRepo) SaveTarget(ctx context.Context, st TargetState) error {
	return r.Save(ctx, Batch{States: []TargetState{st}})
}

// Save implements Store.
func (r *memRepo) Save(ctx context.Context, b Batch) error {
	states := make([][]byte, len(b.States))
	for i, st := range b.States {
		data, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("encode target %s: %w", st.Key(), err)
		}
		states[i] = data
	}
	runs := make([][]byte, len(b.Runs))
	for i, run := range b.Runs {
		if run.ID == "" {
			return fmt.Errorf("save job run: empty ID")
		}
		data, err := json.Marshal(run)
		if err != nil {
			return fmt.Errorf("encode job run %s: %w", run.ID, err)
		}
		runs[i] = data
	}
	approvals := make([][]byte, len(b.Approvals))
	for i, a := range b.Approvals {
		if a.ID == "" {
			return fmt.Errorf("save approval of %s by %s: empty ID", a.Key, a.Who)
		}
		data, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("encode approval %s: %w", a.ID, err)
		}
		approvals[i] = data
	}
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	for i, st := range b.States {
		r.targets[st.Key()] = states[i]
	}
	for i, run := range b.Runs {
		old, ok := r.runs[run.ID]
		if !ok {
			r.m.runSeq++
			old.seq = r.m.runSeq
		}
		old.data = runs[i]
		r.runs[run.ID] = old
	}
	for i, a := range b.Approvals {
		j := slices.IndexFunc(r.approvals, func(o memApproval) bool { return o.id == a.ID })
		if j < 0 {
			r.approvals = append(r.approvals, memApproval{id: a.ID, data: approvals[i]})
			continue
		}
		// Only the consumption of a stored approval changes.
		var was Approval
		if err := json.Unmarshal(r.approvals[j].data, &was); err != nil {
			return fmt.Errorf("decode approval %s: %w", a.ID, err)
		}
		was.ConsumedBy = a.ConsumedBy
		data, err := json.Marshal(was)
		if err != nil {
			return fmt.Errorf("encode approval %s: %w", a.ID, err)
		}
		r.approvals[j].data = data
	}
	return nil
}

// StartRun implements Store.
func (r *memRepo) StartRun(ctx context.Context, run JobRun) error {
	return r.Save(ctx, Batch{Runs: []JobRun{run}})
}

// FinishRun implements Store.
func (r *memRepo) FinishRun(ctx context.Context, run JobRun) error {
	return r.Save(ctx, Batch{Runs: []JobRun{run}})
}

// Run implements Store.
func (r *memRepo) Run(ctx context.Context, id string) (JobRun, error) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	mr, ok := r.runs[id]
	if !ok {
		return JobRun{}, fmt.Errorf("job run %s: %w", id, ErrNotFound)
	}
	var run JobRun
	if err := json.Unmarshal(mr.data, &run); err != nil {
		return JobRun{}, fmt.Errorf("decode job run %s: %w", id, err)
	}
	return run, nil
}

// Runs implements Store.
func (r *memRepo) Runs(ctx context.Context, key desired.Key, limit int) ([]JobRun, error) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	type seqRun struct {
		seq int64
		run JobRun
	}
	var found []seqRun
	for id, mr := range r.runs {
		var run JobRun
		if err := json.Unmarshal(mr.data, &run); err != nil {
			return nil, fmt.Errorf("decode job run %s: %w", id, err)
		}
		if run.Key == key {
			found = append(found, seqRun{mr.seq, run})
		}
	}
	slices.SortFunc(found, func(a, b seqRun) int {
		return cmp.Or(b.run.Started.Compare(a.run.Started), cmp.Compare(b.seq, a.seq))
	})
	if limit > 0 && len(found) > limit {
		found = found[:limit]
	}
	out := make([]JobRun, len(found))
	for i, f := range found {
		out[i] = f.run
	}
	return out, nil
}

// AddApproval implements Store.
func (r *memRepo) AddApproval(ctx context.Context, a Approval) error {
	return r.Save(ctx, Batch{Approvals: []Approval{a}})
}

// Approvals implements Store.
func (r *memRepo) Approvals(ctx context.Context, key desired.Key, digest string) ([]Approval, error) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	return r.approvalsWhere(func(a Approval) bool { return a.Key == key && a.Digest == digest })
}

// CurrentApprovals implements Store.
func (r *memRepo) CurrentApprovals(ctx context.Context) ([]Approval, error) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	current := map[desired.Key][2]string{}
	for key, data := range r.targets {
		var st TargetState
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, fmt.Errorf("decode target %s: %w", key, err)
		}
		current[key] = [2]string{st.Target.Digest, st.Target.Commit}
	}
	return r.approvalsWhere(func(a Approval) bool {
		c, ok := current[a.Key]
		return ok && c == [2]string{a.Digest, a.Commit}
	})
}

func (r *memRepo) approvalsWhere(keep func(Approval) bool) ([]Approval, error) {
	var out []Approval
	for _, ma := range r.approvals {
		var a Approval
		if err := json.Unmarshal(ma.data, &a); err != nil {
			return nil, fmt.Errorf("decode approval %s: %w", ma.id, err)
		}
		if keep(a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// IngestCommit implements Store.
func (r *memRepo) IngestCommit(ctx context.Context, branch, sha, problems string) (int64, error) {
	if sha == "" {
		return 0, fmt.Errorf("ingest commit of %s@%s: empty sha", r.name, branch)
	}
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	for _, in := range r.ingested {
		if in.branch == branch && in.sha == sha {
			return in.seq, nil
		}
	}
	r.m.ingSeq++
	r.ingested = append(r.ingested, memIngest{seq: r.m.ingSeq, branch: branch, sha: sha, problems: problems})
	return r.m.ingSeq, nil
}

// LastIngested implements Store.
func (r *memRepo) LastIngested(ctx context.Context, branch string) (string, int64, error) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	for i := len(r.ingested) - 1; i >= 0; i-- {
		if in := r.ingested[i]; in.branch == branch {
			return in.sha, in.seq, nil
		}
	}
	return "", 0, fmt.Errorf("last ingested commit of %s@%s: %w", r.name, branch, ErrNotFound)
}
