package desired

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/pvnbot/pvnbot/internal/config"
	"github.com/pvnbot/pvnbot/internal/runner"
)

// digestVersion starts the digest input; change it when the encoding changes.
const digestVersion = "pvnbot.desired.v1"

// appendDigestInput appends the canonical encoding of what t renders to
// buf: every value is length-prefixed, every list counted, so no two
// different targets encode the same. What it leaves out is listed in
// Build's doc comment; secret values are written as their SHA-256.
func appendDigestInput(buf []byte, t *Target, ps *params) []byte {
	w := digestWriter{buf: buf}
	w.str(digestVersion)
	w.str(t.Runtime)
	w.str(t.Connection)
	w.str(t.ApplyID)

	byName := slices.Clone(ps.list)
	slices.SortFunc(byName, func(a, b param) int { return strings.Compare(a.name, b.name) })
	w.count(len(byName))
	for _, p := range byName {
		w.str(p.name)
		w.value(p.value, p.secret)
	}

	w.job(&t.Apply)
	w.optJob(t.Fetch)
	w.optJob(t.GetInfo)

	p := &t.Policy
	w.str(string(p.FetchMode))
	w.dur(p.FetchPollInterval)
	w.dur(p.SteadyStatePollInterval)
	w.dur(p.GetInfoPollInterval)
	w.dur(p.ConvergenceGracePeriod)
	w.int(int64(p.MaxConcurrency))
	w.dur(p.Retry.BaseInterval)
	w.dur(p.Retry.MaxInterval)
	w.int(int64(p.Retry.MaxAttempts))
	w.count(len(p.RetryableExitCodes))
	for _, c := range p.RetryableExitCodes {
		w.int(int64(c))
	}
	w.bool(p.RequireApprovalBeforeApply)
	// Written only when set, so that the targets of runtimes without them
	// keep the digests they had before these fields existed.
	if p.FetchRetry != (config.RetryPolicy{}) || p.GetInfoRetry != (config.RetryPolicy{}) {
		w.str("retry")
		for _, r := range []config.RetryPolicy{p.FetchRetry, p.GetInfoRetry} {
			w.dur(r.BaseInterval)
			w.dur(r.MaxInterval)
			w.int(int64(r.MaxAttempts))
		}
	}

	w.count(len(t.Preconditions))
	for _, pc := range t.Preconditions {
		w.str(pc.ReleaseChannelStable)
		m := pc.ManualApproval
		w.bool(m != nil)
		if m != nil {
			w.str(m.Name)
			w.str(m.Description)
			w.bool(m.EveryAction)
			w.int(int64(m.MinApprovers))
		}
	}
	return w.buf
}

func sum(input []byte) string {
	s := sha256.Sum256(input)
	return hex.EncodeToString(s[:])
}

type digestWriter struct{ buf []byte }

func (w *digestWriter) count(n int) { w.buf = binary.AppendUvarint(w.buf, uint64(n)) }

func (w *digestWriter) str(s string) {
	w.count(len(s))
	w.buf = append(w.buf, s...)
}

func (w *digestWriter) int(n int64) { w.buf = binary.AppendVarint(w.buf, n) }

func (w *digestWriter) dur(d time.Duration) { w.int(int64(d)) }

func (w *digestWriter) bool(b bool) {
	if b {
		w.buf = append(w.buf, 1)
	} else {
		w.buf = append(w.buf, 0)
	}
}

// value writes a value, hashed when it is secret.
func (w *digestWriter) value(v string, secret bool) {
	w.bool(secret)
	if !secret {
		w.str(v)
		return
	}
	h := sha256.Sum256([]byte(v))
	w.buf = append(w.buf, h[:]...)
}

func (w *digestWriter) strs(ss []string) {
	w.count(len(ss))
	for _, s := range ss {
		w.str(s)
	}
}

func (w *digestWriter) optJob(s *runner.Spec) {
	w.bool(s != nil)
	if s != nil {
		w.job(s)
	}
}

// job writes what was rendered for a job. Commit, DesiredVersion, the names
// (the key) and the PVN_* variables are left out: see Build.
func (w *digestWriter) job(s *runner.Spec) {
	w.str(s.ProxyRuntime)
	w.str(s.Namespace)
	w.str(s.Image)
	w.strs(s.Entrypoint)
	w.strs(s.Cmd)
	w.str(s.WorkingDirectory)
	w.str(s.ServiceAccount)
	w.dur(s.TTL)
	w.count(len(s.Manifest))
	w.buf = append(w.buf, s.Manifest...)
	w.dur(s.Timeout)
	n := 0
	for _, e := range s.Env {
		if !strings.HasPrefix(e.Name, reservedEnvPrefix) {
			n++
		}
	}
	w.count(n)
	for _, e := range s.Env {
		if strings.HasPrefix(e.Name, reservedEnvPrefix) {
			continue
		}
		w.str(e.Name)
		w.value(e.Value, e.Sensitive)
		w.bool(e.SecretRef != nil)
		if e.SecretRef != nil {
			w.str(e.SecretRef.Name)
			w.str(e.SecretRef.Key)
		}
	}
}
