package wrapper

import (
	"io"
	"sync"
)

// tailBuffer keeps the last limit bytes written to it and counts the rest.
// Memory grows with the output up to limit, not beyond.
type tailBuffer struct {
	limit int
	buf   []byte
	pos   int // once len(buf) == limit: index of the oldest byte
	total int64
}

func newTailBuffer(limit int) *tailBuffer {
	return &tailBuffer{limit: max(limit, 0)}
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	t.total += int64(n)
	if t.limit == 0 {
		return n, nil
	}
	if len(p) > t.limit {
		p = p[len(p)-t.limit:]
	}
	if room := t.limit - len(t.buf); room > 0 {
		k := min(room, len(p))
		t.buf = append(t.buf, p[:k]...)
		p = p[k:]
	}
	for len(p) > 0 {
		k := copy(t.buf[t.pos:], p)
		p = p[k:]
		t.pos = (t.pos + k) % t.limit
	}
	return n, nil
}

// readBuffers holds the buffers ReadFrom reads through, so that a job's
// output does not cost a fresh 32 KiB buffer per stream.
var readBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// ReadFrom reads r to its end, keeping the tail.
func (t *tailBuffer) ReadFrom(r io.Reader) (int64, error) {
	buf := readBuffers.Get().(*[32 << 10]byte)
	defer readBuffers.Put(buf)
	var n int64
	for {
		k, err := r.Read(buf[:])
		_, _ = t.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Bytes returns a copy of the kept tail, oldest byte first; never nil.
func (t *tailBuffer) Bytes() []byte {
	out := make([]byte, 0, len(t.buf))
	out = append(out, t.buf[t.pos:]...)
	return append(out, t.buf[:t.pos]...)
}

// Dropped is how many bytes were written but not kept.
func (t *tailBuffer) Dropped() int64 {
	return t.total - int64(len(t.buf))
}
