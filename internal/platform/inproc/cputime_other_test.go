//go:build !unix

package inproc_test

import "time"

// haveCPUTime says cpuTime measures nothing here: without getrusage the
// benchmarks report wall time only.
const haveCPUTime = false

func cpuTime() time.Duration { return 0 }
