package logic

import "sync/atomic"

// counters are the Service's monotonic counters, read by Stats.
type counters struct {
	stored, duplicates, batches, batchFailures atomic.Uint64
	hashes                                     atomic.Uint64 // Argon2id runs, logins and registrations
}

// Stats is a snapshot for the metrics endpoint.
type Stats struct {
	Stored, Duplicates, Batches, BatchFailures uint64
	Queued                                     int
	PasswordHashes                             uint64
}

// Stats returns the current counters.
func (s *Service) Stats() Stats {
	return Stats{
		Stored: s.stats.stored.Load(), Duplicates: s.stats.duplicates.Load(),
		Batches: s.stats.batches.Load(), BatchFailures: s.stats.batchFailures.Load(),
		Queued: s.queued(), PasswordHashes: s.stats.hashes.Load(),
	}
}

func (s *Service) queued() int {
	n := 0
	for _, q := range s.sends {
		n += len(q)
	}
	return n
}
