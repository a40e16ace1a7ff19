package store

// QueueLen returns the number of Update calls waiting for the committer.
func QueueLen(s *Bolt) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}
