package ops

import (
	"strconv"
	"strings"
	"time"
)

// accessTagPrefix marks a server with a break-glass opening and when it
// ends (Unix seconds). The tag lives on the server, where status and a
// later 'access close' find it without local state, and it goes with the
// server.
const accessTagPrefix = "access-until="

func accessUntil(tags []string) (time.Time, bool) {
	for _, t := range tags {
		if v, ok := strings.CutPrefix(t, accessTagPrefix); ok {
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(sec, 0), true
		}
	}
	return time.Time{}, false
}
