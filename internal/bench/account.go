package bench

// convLedger checks one conversation's deliveries against its ACKs, by
// seq: it is the independent referee of the SDK's exactly-once, in-order
// promise. It is not safe for concurrent use; the caller locks.
//
// Definitions (per conversation, as docs/benchmarks.md reports them):
//   - duplicated: a delivery of a seq that was already delivered;
//   - reordered:  a first delivery of a seq lower than the highest seq
//     delivered before it;
//   - lost:       a seq that was ACKed to the sender but never delivered
//     (checked after the final settle and sync).
type convLedger struct {
	seen       bitset
	maxSeen    uint64
	delivered  uint64 // distinct seqs delivered
	duplicated uint64
	reordered  uint64
}

// deliveryKind classifies one delivery.
type deliveryKind int

const (
	deliveredInOrder deliveryKind = iota
	deliveredDuplicate
	deliveredReordered
)

// observe records a delivery of seq and says what it was.
func (l *convLedger) observe(seq uint64) deliveryKind {
	if l.seen.has(seq) {
		l.duplicated++
		return deliveredDuplicate
	}
	l.seen.set(seq)
	l.delivered++
	if seq < l.maxSeen {
		l.reordered++
		return deliveredReordered
	}
	l.maxSeen = seq
	return deliveredInOrder
}

// missing counts the seqs of acked that were never delivered.
func (l *convLedger) missing(acked []uint64) (lost uint64) {
	for _, s := range acked {
		if !l.seen.has(s) {
			lost++
		}
	}
	return lost
}

// bitset is a growable set of small non-negative integers (seqs are
// gap-free from 1, so a bitset is dense).
type bitset []uint64

func (b bitset) has(i uint64) bool {
	w := i / 64
	return w < uint64(len(b)) && b[w]&(1<<(i%64)) != 0
}

func (b *bitset) set(i uint64) {
	w := i / 64
	if w >= uint64(len(*b)) {
		n := max(w+1, uint64(2*len(*b)))
		nb := make(bitset, n)
		copy(nb, *b)
		*b = nb
	}
	(*b)[w] |= 1 << (i % 64)
}
