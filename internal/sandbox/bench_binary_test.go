//go:build linux

package sandbox_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/report"
)

// BenchmarkBinary measures the built binary: its size, how long
// `rawkode-cloud --help` takes to start and finish, and the peak RSS of a
// whole `provision --sandbox --report` in a child process. Run it with:
//
//	go test -run '^$' -bench Binary ./internal/sandbox/
func BenchmarkBinary(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "rawkode-cloud")
	gobin, err := exec.LookPath("go")
	if err != nil {
		b.Skip("no go toolchain on PATH to build the binary with")
	}
	build := exec.Command(gobin, "build", "-o", bin, "github.com/rawkode/rawkode-cloud/cmd/rawkode-cloud")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	st, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	size := float64(st.Size()) / (1 << 20)

	// Start-up: --help, many times; the minimum is the least disturbed.
	const runs = 20
	var total, best time.Duration
	for i := range runs {
		start := time.Now()
		if out, err := exec.Command(bin, "--help").CombinedOutput(); err != nil {
			b.Fatalf("--help: %v\n%s", err, out)
		}
		d := time.Since(start)
		total += d
		if i == 0 || d < best {
			best = d
		}
	}

	// Peak RSS of a whole sandbox provisioning.
	rep := filepath.Join(dir, "report.json")
	cmd := exec.Command(bin, "provision", "--sandbox", "--output", "json", "--report", rep)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("provision --sandbox: %v\n%s", err, out)
	}
	var rss float64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = float64(ru.Maxrss) / 1024 // ru_maxrss is in kilobytes on Linux
	}
	var r report.Report
	if raw, err := os.ReadFile(rep); err == nil {
		_ = json.Unmarshal(raw, &r)
	}
	// A sub-benchmark makes the testing package run this body once (a
	// benchmark without one is run again for every -benchtime round): one
	// op is one `rawkode-cloud --help`.
	b.Run("help", func(b *testing.B) {
		for range b.N {
			if err := exec.Command(bin, "--help").Run(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(size, "binary_MiB")
		b.ReportMetric(rss, "provision_peak_rss_MiB")
	})
	fmt.Printf("\nbinary %s: %.1f MiB (go build, not stripped)\n", runtime.GOOS+"/"+runtime.GOARCH, size)
	fmt.Printf("rawkode-cloud --help: min %s, mean %s over %d runs\n", best.Round(time.Microsecond), (total / runs).Round(time.Microsecond), runs)
	fmt.Printf("provision --sandbox: peak RSS %.1f MiB (child process, getrusage)", rss)
	if r.CLIAddedSecondsReal != nil {
		fmt.Printf(", cli_added_seconds_real %.3f", *r.CLIAddedSecondsReal)
	}
	fmt.Println()
}
