package store

// CloseIdle runs one pass of the idle janitor, so that tests can drive it
// with a fake clock instead of waiting.
func (s *Store) CloseIdle() { s.closeIdle() }
