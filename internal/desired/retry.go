package desired

import (
	"cmp"
	"time"

	"github.com/pvnbot/pvnbot/internal/config"
)

// retryOf is the policy a job's retryPolicy gives, with base as its
// baseInterval when it has none; zero when there is no retryPolicy.
func retryOf(rp *config.RetryPolicy, base time.Duration) config.RetryPolicy {
	if rp == nil {
		return config.RetryPolicy{}
	}
	out := *rp
	out.BaseInterval = cmp.Or(out.BaseInterval, base)
	return out
}
