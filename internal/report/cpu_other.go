//go:build !unix

package report

import "time"

// ProcessCPU is unknown on this platform.
func ProcessCPU() time.Duration { return -1 }
