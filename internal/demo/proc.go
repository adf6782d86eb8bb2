package demo

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// What the kernel says about the system's processes: CPU time and
// memory, from Linux's /proc. Elsewhere they read as 0, and the demo
// prints n/a.

// cpuSeconds is utime+stime of pid (USER_HZ is 100 on every Linux Go
// supports).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return float64(ut+st) / 100
}

func cpuOf(pids []int) map[int]float64 {
	out := make(map[int]float64, len(pids))
	for _, p := range pids {
		out[p] = cpuSeconds(p)
	}
	return out
}

// sumDelta is the CPU the processes used between the two readings; a
// process gone by the second reading counts nothing.
func sumDelta(before, after map[int]float64) float64 {
	var s float64
	for p, a := range after {
		if a > 0 {
			s += a - before[p]
		}
	}
	return s
}

// kbField reads "Name:   1234 kB" from a /proc file, in bytes.
func kbField(path, name string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			if f := strings.Fields(v); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// memorySampler keeps the highest total PSS and RSS of a set of
// processes, read every 500ms. PSS shares the pages that processes share
// (the binary's, mostly) among them, so it adds up across processes.
type memorySampler struct {
	done     chan struct{}
	wg       sync.WaitGroup
	pss, rss int64
}

func sampleMemory(pids []int) *memorySampler {
	m := &memorySampler{done: make(chan struct{})}
	read := func() {
		var pss, rss int64
		for _, p := range pids {
			pss += kbField(fmt.Sprintf("/proc/%d/smaps_rollup", p), "Pss:")
			rss += kbField(fmt.Sprintf("/proc/%d/status", p), "VmRSS:")
		}
		m.pss, m.rss = max(m.pss, pss), max(m.rss, rss)
	}
	m.wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.done:
				read()
				return
			case <-t.C:
				read()
			}
		}
	})
	return m
}

func (m *memorySampler) stop() (pss, rss int64) {
	close(m.done)
	m.wg.Wait()
	return m.pss, m.rss
}
