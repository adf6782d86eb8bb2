package database

import "sync"

// signal wakes its subscribers, each through a channel of one slot: a
// subscriber busy with the last wake-up gets one more, not one per
// notify, so a burst of commits costs a waiting worker one look.
type signal struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func (s *signal) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.subs == nil {
		s.subs = map[chan struct{}]struct{}{}
	}
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

func (s *signal) notify() {
	s.mu.Lock()
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
}
