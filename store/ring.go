package store

// ring is a FIFO of (seq, size) pairs kept in fixed-size blocks, so a route with
// a million queued messages costs 12 bytes each and never doubles a big slice.
// An entry may be tombstoned in place (acked out of order); leading tombstones
// are popped eagerly, so the front is always live.
type ring struct {
	blocks []*ringBlock
	off    int // index of the first element within blocks[0]
	n      int // elements, tombstones included
}

const (
	ringBlockLen = 1024
	tombstone    = uint32(1) << 31
)

type ringBlock struct {
	seq  [ringBlockLen]uint64
	size [ringBlockLen]uint32
}

func (r *ring) len() int { return r.n }

func (r *ring) at(i int) (seq uint64, size uint32, dead bool) {
	j := r.off + i
	b := r.blocks[j/ringBlockLen]
	s := b.size[j%ringBlockLen]
	return b.seq[j%ringBlockLen], s &^ tombstone, s&tombstone != 0
}

func (r *ring) kill(i int) {
	j := r.off + i
	r.blocks[j/ringBlockLen].size[j%ringBlockLen] |= tombstone
}

func (r *ring) push(seq uint64, size uint32) {
	j := r.off + r.n
	if j/ringBlockLen >= len(r.blocks) {
		r.blocks = append(r.blocks, new(ringBlock))
	}
	b := r.blocks[j/ringBlockLen]
	b.seq[j%ringBlockLen] = seq
	b.size[j%ringBlockLen] = size
	r.n++
}

func (r *ring) popFront() {
	r.n--
	r.off++
	if r.off == ringBlockLen {
		r.blocks[0] = nil
		r.blocks = r.blocks[1:]
		r.off = 0
	}
	if r.n == 0 {
		r.blocks = r.blocks[:0]
		r.off = 0
	}
}

// search returns the index of seq, or false.
func (r *ring) search(seq uint64) (int, bool) {
	lo, hi := 0, r.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s, _, _ := r.at(m); s < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < r.n {
		if s, _, _ := r.at(lo); s == seq {
			return lo, true
		}
	}
	return 0, false
}
