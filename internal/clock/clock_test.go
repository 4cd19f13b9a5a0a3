package clock

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFakeFiresDueTimersInOrder(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewFake(start)
	var fired []string
	var seenAt []time.Duration
	record := func(name string) func() {
		return func() {
			fired = append(fired, name)
			seenAt = append(seenAt, c.Now().Sub(start))
		}
	}
	c.AfterFunc(3*time.Second, record("3s"))
	c.AfterFunc(time.Second, record("1s"))
	stopped := c.AfterFunc(2*time.Second, record("2s"))
	c.AfterFunc(time.Second, func() {
		record("1s-second")()
		c.AfterFunc(time.Second, record("chained-2s"))
	})
	assert.True(t, stopped.Stop())
	assert.False(t, stopped.Stop(), "a stopped timer is no longer pending")

	c.Advance(2500 * time.Millisecond)
	assert.Equal(t, []string{"1s", "1s-second", "chained-2s"}, fired)
	assert.Equal(t, []time.Duration{time.Second, time.Second, 2 * time.Second}, seenAt)
	assert.Equal(t, 2500*time.Millisecond, c.Now().Sub(start))
	assert.Equal(t, 1, c.Pending())

	c.Advance(500 * time.Millisecond)
	assert.Equal(t, "3s", fired[len(fired)-1])
	assert.Equal(t, 0, c.Pending())
}

func TestFakeZeroDelayFiresOnAdvanceZero(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	fired := false
	c.AfterFunc(0, func() { fired = true })
	assert.False(t, fired, "nothing fires until the clock is advanced")
	c.Advance(0)
	assert.True(t, fired)
}
