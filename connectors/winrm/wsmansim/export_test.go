package wsmansim

import "time"

// SetClock replaces the server's clock, so idle clean-up can be tested without
// waiting.
func SetClock(s *Server, now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}
