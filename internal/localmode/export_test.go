package localmode

import "github.com/pvnbot/pvnbot/internal/reconcile"

// WrapStore puts wrap between the engine of a Run and its state file.
func WrapStore(opts *Options, wrap func(reconcile.Store) reconcile.Store) {
	opts.wrapStore = wrap
}
