package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// What the kernel says about a process: its resident memory and the CPU
// time it has used. Only Linux's /proc is read.

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// rssBytes is VmRSS of pid.
func rssBytes(pid int) (int64, error) {
	v, err := kbField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
	if err != nil {
		return 0, fmt.Errorf("no VmRSS for pid %d: %w", pid, err)
	}
	return v, nil
}

// memory is what one process holds: VmRSS, and the share of it that is
// its own (Anon: heap, stacks, SQLite's caches) rather than pages of the
// binary that every process of the system maps; PSS splits shared pages
// among the processes that map them, so PSS adds up across processes.
type memory struct {
	RSS, Anon, Pss int64
}

func memoryOf(pid int) memory {
	var m memory
	status := fmt.Sprintf("/proc/%d/status", pid)
	m.RSS, _ = kbField(status, "VmRSS:")
	m.Anon, _ = kbField(status, "RssAnon:")
	m.Pss, _ = kbField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
	return m
}

// kbField reads "Name:   1234 kB" from a /proc file, in bytes.
func kbField(path, name string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return 0, err
				}
				return kb << 10, nil
			}
		}
	}
	return 0, fmt.Errorf("no %s in %s", name, path)
}

// cpuSeconds is utime+stime of pid.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': state(3) ppid(4) ... utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unreadable times in /proc/%d/stat", pid)
	}
	return float64(ut+st) / clockTicks, nil
}

// cpuOf reads the CPU seconds of every pid; a pid that has gone reads 0.
func cpuOf(pids []int) map[int]float64 {
	out := make(map[int]float64, len(pids))
	for _, p := range pids {
		s, _ := cpuSeconds(p)
		out[p] = s
	}
	return out
}

// rssOf reads the memory of every pid.
func rssOf(pids []int) map[int]memory {
	out := make(map[int]memory, len(pids))
	for _, p := range pids {
		out[p] = memoryOf(p)
	}
	return out
}

// rssSampler records the highest memory figures of each pid while it runs.
type rssSampler struct {
	mu   sync.Mutex
	max  map[int]memory
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(pids []int, every, after time.Duration) *rssSampler {
	s := &rssSampler{max: map[int]memory{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		select {
		case <-s.stop:
			return
		case <-time.After(after):
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.mu.Lock()
			for p, r := range rssOf(pids) {
				m := s.max[p]
				s.max[p] = memory{RSS: max(m.RSS, r.RSS), Anon: max(m.Anon, r.Anon), Pss: max(m.Pss, r.Pss)}
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends the sampling and returns the highest figures seen per pid.
func (s *rssSampler) Stop() map[int]memory {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]memory, len(s.max))
	for p, r := range s.max {
		out[p] = r
	}
	return out
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute figures.
func loadAverage() [3]float64 {
	var out [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		out[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return out
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// memTotal is MemTotal of /proc/meminfo in bytes.
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
