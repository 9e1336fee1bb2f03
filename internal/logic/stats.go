package logic

import "sync/atomic"

// counters are the Service's monotonic counters, read by Stats.
type counters struct {
	stored, duplicates, batches, batchFailures atomic.Uint64
	hashes                                     atomic.Uint64 // Argon2id runs, logins and registrations
	limited                                    [NumLimits]atomic.Uint64
}

// Stats is a snapshot for the metrics endpoint.
type Stats struct {
	Stored, Duplicates, Batches, BatchFailures uint64
	Queued                                     int
	PasswordHashes                             uint64
	Limited                                    [NumLimits]uint64 // requests refused, by limit
}

// Stats returns the current counters.
func (s *Service) Stats() Stats {
	return Stats{
		Stored: s.stats.stored.Load(), Duplicates: s.stats.duplicates.Load(),
		Batches: s.stats.batches.Load(), BatchFailures: s.stats.batchFailures.Load(),
		Queued: s.queued(), PasswordHashes: s.stats.hashes.Load(), Limited: s.limitedCounts(),
	}
}

func (s *Service) limitedCounts() (n [NumLimits]uint64) {
	for l := range n {
		n[l] = s.stats.limited[l].Load()
	}
	return n
}

func (s *Service) queued() int {
	n := 0
	for _, q := range s.sends {
		n += q.Len()
	}
	return n
}
