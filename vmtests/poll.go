package vmtests

import (
	"context"
	"time"
)

// poll calls check every interval until it returns true or limit has
// passed (or ctx ended), and returns how long that took and whether check
// succeeded. check gets the bounded context; the caller words the failure
// with what check saw last.
func poll(ctx context.Context, limit, every time.Duration, check func(ctx context.Context) bool) (time.Duration, bool) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		if check(ctx) {
			return time.Since(start), true
		}
		select {
		case <-ctx.Done():
			return 0, false
		case <-time.After(every):
		}
	}
}
