package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/pvnbot/pvnbot/internal/desired"
)

// Memory is a Store held in memory, for tests. Records are kept encoded as
// JSON, so what comes back is a copy and every type is proven to survive the
// encoding a durable backend uses.
type Memory struct {
	mu        sync.Mutex
	targets   map[desired.Key][]byte
	runs      map[string]memRun
	runSeq    int64
	approvals [][]byte
}

type memRun struct {
	seq  int64
	data []byte
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{targets: map[desired.Key][]byte{}, runs: map[string]memRun{}}
}

// LoadTargets implements Store.
func (m *Memory) LoadTargets(ctx context.Context) ([]TargetState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]TargetState, 0, len(m.targets))
	for key, data := range m.targets {
		var st TargetState
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, fmt.Errorf("decode target %s: %w", key, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// SaveTarget implements Store.
func (m *Memory) SaveTarget(ctx context.Context, st TargetState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode target %s: %w", st.Key(), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.targets[st.Key()] = data
	return nil
}

// SaveTargets implements Store.
func (m *Memory) SaveTargets(ctx context.Context, states []TargetState, runs []JobRun) error {
	encoded := make([][]byte, len(states))
	for i, st := range states {
		data, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("encode target %s: %w", st.Key(), err)
		}
		encoded[i] = data
	}
	encodedRuns := make([][]byte, len(runs))
	for i, run := range runs {
		if run.ID == "" {
			return fmt.Errorf("save job run: empty ID")
		}
		data, err := json.Marshal(run)
		if err != nil {
			return fmt.Errorf("encode job run %s: %w", run.ID, err)
		}
		encodedRuns[i] = data
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, st := range states {
		m.targets[st.Key()] = encoded[i]
	}
	for i, run := range runs {
		m.putEncodedRun(run.ID, encodedRuns[i])
	}
	return nil
}

// StartRun implements Store.
func (m *Memory) StartRun(ctx context.Context, run JobRun) error {
	return m.putRun(run)
}

// FinishRun implements Store.
func (m *Memory) FinishRun(ctx context.Context, run JobRun) error {
	return m.putRun(run)
}

func (m *Memory) putRun(run JobRun) error {
	if run.ID == "" {
		return fmt.Errorf("save job run: empty ID")
	}
	data, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("encode job run %s: %w", run.ID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.putEncodedRun(run.ID, data)
	return nil
}

func (m *Memory) putEncodedRun(id string, data []byte) {
	r, ok := m.runs[id]
	if !ok {
		m.runSeq++
		r.seq = m.runSeq
	}
	r.data = data
	m.runs[id] = r
}

// Run implements Store.
func (m *Memory) Run(ctx context.Context, id string) (JobRun, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.runs[id]
	if !ok {
		return JobRun{}, fmt.Errorf("job run %s: %w", id, ErrNotFound)
	}
	var run JobRun
	if err := json.Unmarshal(r.data, &run); err != nil {
		return JobRun{}, fmt.Errorf("decode job run %s: %w", id, err)
	}
	return run, nil
}

// Runs implements Store.
func (m *Memory) Runs(ctx context.Context, key desired.Key, limit int) ([]JobRun, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	type seqRun struct {
		seq int64
		run JobRun
	}
	var found []seqRun
	for id, r := range m.runs {
		var run JobRun
		if err := json.Unmarshal(r.data, &run); err != nil {
			return nil, fmt.Errorf("decode job run %s: %w", id, err)
		}
		if run.Key == key {
			found = append(found, seqRun{r.seq, run})
		}
	}
	sort.Slice(found, func(i, j int) bool {
		a, b := found[i], found[j]
		if !a.run.Started.Equal(b.run.Started) {
			return a.run.Started.After(b.run.Started)
		}
		return a.seq > b.seq
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
func (m *Memory) AddApproval(ctx context.Context, a Approval) error {
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode approval: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.approvals = append(m.approvals, data)
	return nil
}

// Approvals implements Store.
func (m *Memory) Approvals(ctx context.Context, key desired.Key, digest string) ([]Approval, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Approval
	for _, data := range m.approvals {
		var a Approval
		if err := json.Unmarshal(data, &a); err != nil {
			return nil, fmt.Errorf("decode approval: %w", err)
		}
		if a.Key == key && a.Digest == digest {
			out = append(out, a)
		}
	}
	return out, nil
}

// ConsumeApprovals implements Store.
func (m *Memory) ConsumeApprovals(ctx context.Context, key desired.Key, digest, runID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, data := range m.approvals {
		var a Approval
		if err := json.Unmarshal(data, &a); err != nil {
			return fmt.Errorf("decode approval: %w", err)
		}
		if a.Key != key || a.Digest != digest || a.ConsumedBy != "" {
			continue
		}
		a.ConsumedBy = runID
		updated, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("encode approval: %w", err)
		}
		m.approvals[i] = updated
	}
	return nil
}

// Close implements Store; it does nothing.
func (m *Memory) Close() error { return nil }
