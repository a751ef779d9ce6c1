//go:build unix

package report

import (
	"syscall"
	"time"
)

// ProcessCPU is the user+system CPU this process has used so far; negative
// when the platform cannot say.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
