package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a heartbeat time: whole seconds ("2", "2s") or milliseconds
// ("500ms"), the two forms ha.cf understands.
type Duration time.Duration

// MaxDuration bounds every heartbeat time. heartbeat's timings are seconds
// to minutes; the bound also keeps the checks that add and double them
// (initdead >= 2 x deadtime) far from overflowing.
const MaxDuration = time.Hour

func (d *Duration) decodeScalar(s string) error {
	v := strings.TrimSpace(s)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		if n > int64(MaxDuration/time.Second) {
			return fmt.Errorf("duration %q is longer than 1h: use at most 3600 seconds", s)
		}
		*d = Duration(time.Duration(n) * time.Second)
		return d.positive(s)
	}
	pd, err := time.ParseDuration(v)
	if err != nil || pd < 0 || pd%time.Millisecond != 0 {
		return fmt.Errorf("invalid duration %q: use whole seconds (30, 30s) or milliseconds (500ms)", s)
	}
	if pd > MaxDuration {
		return fmt.Errorf("duration %q is longer than 1h: use at most 3600 seconds", s)
	}
	*d = Duration(pd)
	return d.positive(s)
}

// positive refuses 0 as it refuses -5: every heartbeat time is a wait, and
// 0 is what an unset time reads as, which the default would silently replace.
func (d Duration) positive(s string) error {
	if d == 0 {
		return fmt.Errorf("invalid duration %q: a heartbeat time must be above 0: use whole seconds (30, 30s) or milliseconds (500ms)", s)
	}
	return nil
}

// HeartbeatString renders the duration as ha.cf wants it: "2" or "500ms".
func (d Duration) HeartbeatString() string {
	td := time.Duration(d)
	if td%time.Second == 0 {
		return strconv.FormatInt(int64(td/time.Second), 10)
	}
	return strconv.FormatInt(int64(td/time.Millisecond), 10) + "ms"
}

// Seconds rounds up to whole seconds, for tools that only take seconds.
func (d Duration) Seconds() int {
	td := time.Duration(d)
	return int((td + time.Second - 1) / time.Second)
}
