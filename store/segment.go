package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/s2"
)

// --- segments: the messages of one route written by one commit ---
//
// A commit writes one badger entry per route it adds messages to, not one
// per message: "g" route-id(4) last-seq(8) first-seq(8) -> the messages,
// compactly encoded. Keyed by the last sequence number, so a seek to seq
// lands on the segment holding seq (or the next one), and the segments a
// head passes are the ones a seek from the route's start meets before it.
//
// A message leaves the queue by the route's head (meta.head: in-order
// removals move it past the message) or, when it is removed out of order
// (an ack inside the window, a dead letter, a purge), by a marker
// "d" route-id(4) seq(8) (empty value) until the head passes it; then the
// marker is deleted, and a segment is deleted once the head passes its last
// message. Readers take nothing below the head and nothing marked: a
// segment that badger's value-log GC brings back after its delete
// (gcresurrect_test.go) lies wholly below the head and is never read again.
//
// The value: a version byte (segVersion), then per message
//
//	uvarint   seq - the previous seq (the first: seq - first-seq)
//	byte      flags: bit 0 retain, bits 1-2 QoS, bit 3 raw, bit 4 same
//	          topic as the previous message, bit 5 same device
//	raw:      uvarint length, the message as Open's old format held it
//	          (a record that did not read when it was migrated)
//	else:     varint time - the previous message's time (the first: the
//	          time), topic (uvarint length, bytes) unless bit 4, device
//	          likewise unless bit 5, payload (uvarint length, bytes)
//
// A segment whose body (what follows the version byte) compresses is
// written as version segVersionS2 instead (sealSeg): the version byte, then
// the body cut into chunks of at most segChunk bytes, each
//
//	uvarint   length of the compressed chunk
//	bytes     the chunk, an S2 block (github.com/klauspost/compress/s2:
//	          a uvarint of its decoded length, then the block)
//	4 bytes   CRC-32C (Castagnoli) of the compressed chunk, big-endian
//
// The decoded chunks, in order, are the version-2 body. A segment is
// compressed only when that saves at least 1/segMinGain of it (sensor
// telemetry, JSON or text, saves most; random or already compressed
// payloads are written as version 2, no CPU spent reading them back).
// Compression shrinks every byte a segment costs the storage: the
// write-ahead log, the memtable flush and any compaction that rewrites it.
// S2 block decoding has no checksum of its own: the CRC tells a damaged
// chunk, and a reader takes the messages of the chunks before it (and of
// the part of the damaged chunk's message stream they end in) and returns
// the rest as one damaged record, as for a version-2 segment cut short.
//
// In memory (read-ahead, dead letters, sizes in the meta) a message keeps
// the per-message encoding of appendMessage: a segment is transcoded from
// and to it, so the counts of a queue migrated from the old format agree
// (and a message counts the same bytes compressed or not).
const (
	pSeg  = 'g'
	pMark = 'd'

	segVersion   = 2
	segVersionS2 = 3
	segKeyLen    = 21

	// segChunk: the most body bytes one compressed chunk holds. Small
	// enough that a damaged chunk loses at most about 150 messages of 100
	// bytes, not a whole segment of 600; large enough that a chunk
	// compresses about as well as the whole segment would: a commit of
	// 129 of the paho harness's messages (17.5 KB) compresses to 1,266
	// bytes whole, 1,357 in 16 KiB chunks, 2,231 in 4 KiB ones.
	segChunk = 16 << 10
	// segMinGain: compress when the compressed segment is at most
	// 1 - 1/segMinGain of the plain one.
	segMinGain = 8
	// segMinCompress: a body shorter than this is not worth compressing.
	segMinCompress = 128

	segRetain     = 1 << 0
	segQoSShift   = 1
	segRaw        = 1 << 3
	segSameTopic  = 1 << 4
	segSameDevice = 1 << 5
)

func segKey(rid uint32, first, last uint64) []byte {
	k := make([]byte, 0, segKeyLen)
	k = append(k, pSeg)
	k = binary.BigEndian.AppendUint32(k, rid)
	k = binary.BigEndian.AppendUint64(k, last)
	return binary.BigEndian.AppendUint64(k, first)
}

// segSeek is where a seek for the segment holding seq (or the first after
// it) starts.
func segSeek(rid uint32, seq uint64) []byte { return msgKey(pSeg, rid, seq) }

// parseSegKey reads a segment key; ok is false for anything else.
func parseSegKey(k []byte) (rid uint32, first, last uint64, ok bool) {
	if len(k) != segKeyLen || k[0] != pSeg {
		return 0, 0, 0, false
	}
	rid = binary.BigEndian.Uint32(k[1:])
	last = binary.BigEndian.Uint64(k[5:])
	first = binary.BigEndian.Uint64(k[13:])
	return rid, first, last, first <= last
}

// oldMsg is a message in the per-message encoding, parsed without copying.
type oldMsg struct {
	retain        bool
	qos           byte
	time          int64
	topic, device []byte
	payload       []byte
	raw           bool // did not parse: kept as bytes
	val           []byte
}

// parseOld parses v as decodeMessage does (splitMessage), and also
// refuses flags and a QoS a segment cannot hold: such a record is kept raw.
func parseOld(v []byte) oldMsg {
	flags, qos, t, topic, device, payload, ok := splitMessage(v)
	if !ok || flags&^1 != 0 || qos > 3 {
		return oldMsg{val: v, raw: true}
	}
	return oldMsg{retain: flags&1 != 0, qos: qos, time: t, topic: topic, device: device, payload: payload, val: v}
}

// segWriter encodes one segment.
type segWriter struct {
	b             []byte
	first, last   uint64
	n             int
	time          int64
	topic, device []byte
}

func (w *segWriter) reset(b []byte) {
	*w = segWriter{b: append(b, segVersion)}
}

// add appends the message seq (above every one added before) in its
// per-message encoding val.
func (w *segWriter) add(seq uint64, val []byte) {
	if w.n == 0 {
		w.first = seq
		w.last = seq
	}
	w.b = binary.AppendUvarint(w.b, seq-w.last)
	w.last = seq
	w.n++
	m := parseOld(val)
	if m.raw {
		w.b = append(w.b, segRaw)
		w.b = binary.AppendUvarint(w.b, uint64(len(val)))
		w.b = append(w.b, val...)
		return
	}
	flags := m.qos << segQoSShift
	if m.retain {
		flags |= segRetain
	}
	sameT := w.n > 1 && string(m.topic) == string(w.topic)
	sameD := w.n > 1 && string(m.device) == string(w.device)
	if sameT {
		flags |= segSameTopic
	}
	if sameD {
		flags |= segSameDevice
	}
	w.b = append(w.b, flags)
	w.b = binary.AppendVarint(w.b, m.time-w.time)
	w.time = m.time
	if !sameT {
		w.b = binary.AppendUvarint(w.b, uint64(len(m.topic)))
		w.b = append(w.b, m.topic...)
		w.topic = m.topic
	}
	if !sameD {
		w.b = binary.AppendUvarint(w.b, uint64(len(m.device)))
		w.b = append(w.b, m.device...)
		w.device = m.device
	}
	w.b = binary.AppendUvarint(w.b, uint64(len(m.payload)))
	w.b = append(w.b, m.payload...)
}

// segSplit cuts a route's messages into segments that stay below the
// value threshold: in the LSM tree, written to the WAL with the commit's
// other entries and synced by its one fdatasync. A segment in the value
// log would cost a second file synced per commit (at least a page each:
// more bytes per message at the batch sizes of a sensor site, measured)
// and value-log GC to reclaim it. A message of at least the threshold is a
// segment of its own, in the value log as before segments.
type segSplit struct {
	rt    *route
	w     segWriter
	buf   []byte
	start int
	out   []op
}

// segLimit is the largest segment value kept below the threshold.
func segLimit() int { return valueThreshold - 256 }

func (s *segSplit) add(seq uint64, val []byte) {
	if s.w.n > 0 && len(s.w.b)-s.start+len(val)+2*binary.MaxVarintLen64 > segLimit() {
		s.flush()
	}
	if s.w.n == 0 {
		s.start = len(s.buf)
		s.w.reset(s.buf)
	}
	s.w.add(seq, val)
	s.buf = s.w.b
}

// flush ends the segment being written, compressed when that pays
// (sealSeg) unless it is one message of at least the threshold: that goes
// to the value log as before compression (a payload that big is rarely
// sensor telemetry, and value-log GC and the 32-bit profile are sized for
// it).
func (s *segSplit) flush() {
	if s.w.n == 0 {
		return
	}
	if len(s.buf)-s.start < valueThreshold {
		s.buf = append(s.buf[:s.start], sealSeg(s.buf[s.start:])...)
	}
	s.out = append(s.out, op{rt: s.rt, key: segKey(s.rt.id, s.w.first, s.w.last), val: s.buf[s.start:len(s.buf):len(s.buf)]})
	s.w.n = 0
}

// segScratch holds sealSeg's compressed output until it is copied back.
var segScratch = sync.Pool{New: func() any { return new([]byte) }}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// sealSeg returns the value to store for the version-2 segment v: v
// compressed (version segVersionS2) when that wins, else v itself. The
// result may share v's array (it is never longer than v).
func sealSeg(v []byte) []byte {
	body := v[1:]
	if len(v) == 0 || v[0] != segVersion || len(body) < segMinCompress {
		return v
	}
	bp := segScratch.Get().(*[]byte)
	defer segScratch.Put(bp)
	out := append((*bp)[:0], segVersionS2)
	for rest := body; len(rest) > 0; {
		chunk := rest[:min(len(rest), segChunk)]
		rest = rest[len(chunk):]
		n := s2.MaxEncodedLen(len(chunk))
		at := len(out) + binary.MaxVarintLen32
		out = slices.Grow(out, binary.MaxVarintLen32+n+4)
		enc := s2.Encode(out[at:at+n], chunk)
		sum := crc32.Checksum(enc, crc32c)
		out = binary.AppendUvarint(out, uint64(len(enc)))
		out = append(out, enc...) // moves enc down over the room left for its length
		out = binary.BigEndian.AppendUint32(out, sum)
		if len(out) > len(v)-len(v)/segMinGain {
			*bp = out
			return v
		}
	}
	*bp = out
	return append(v[:0], out...)
}

// openSeg decodes a compressed segment's chunks into a version-2 value:
// the body of the chunks that decode, and the stored bytes from the first
// one that does not (nil when all do).
func openSeg(v []byte) (plain, rest []byte) {
	plain = []byte{segVersion}
	for p := 1; p < len(v); {
		n, k := binary.Uvarint(v[p:])
		if k <= 0 || n > uint64(len(v)-p-k) || uint64(len(v)-p-k)-n < 4 {
			return plain, v[p:]
		}
		enc := v[p+k : p+k+int(n)]
		if binary.BigEndian.Uint32(v[p+k+int(n):]) != crc32.Checksum(enc, crc32c) {
			return plain, v[p:]
		}
		dl, err := s2.DecodedLen(enc)
		if err != nil || dl > segChunk {
			return plain, v[p:]
		}
		plain = slices.Grow(plain, dl)
		if _, err := s2.Decode(plain[len(plain):len(plain)+dl], enc); err != nil {
			return plain, v[p:]
		}
		plain = plain[:len(plain)+dl]
		p += k + int(n) + 4
	}
	return plain, nil
}

// segReader reads a segment's messages in order, resumably (a route keeps
// the one it reads ahead from: a read-ahead of aheadMax messages at a time
// does not decode the segment from its start each time).
type segReader struct {
	first, last   uint64
	v             []byte
	tail          []byte // of a compressed segment: the stored bytes from its first damaged chunk
	pos           int
	seq           uint64 // of the last message read (n > 0)
	time          int64
	topic, device []byte
	n             int
	broken        bool // the rest does not decode
}

func newSegReader(first, last uint64, v []byte) *segReader {
	r := &segReader{first: first, last: last, v: v, pos: 1}
	if len(v) > 0 && v[0] == segVersionS2 {
		r.v, r.tail = openSeg(v)
	}
	if len(r.v) == 0 || r.v[0] != segVersion {
		r.pos, r.broken = 0, true
	}
	return r
}

// next returns the next message: its seq and its per-message encoding in a
// new slice. A part that does not decode is returned once, as it is, with
// the seq after the last one read (Next moves it to the dead letters as
// damaged; salvage counts it lost), unless every seq of the segment was
// read already. ok is false at the end; damaged says the record is such a
// remainder.
func (r *segReader) next() (seq uint64, val []byte, damaged, ok bool) {
	if r.pos < 0 {
		return 0, nil, false, false
	}
	if !r.broken && r.pos < len(r.v) {
		if seq, val, ok := r.decodeOne(); ok {
			return seq, val, false, true
		}
		r.broken = true
	}
	// The end, or what does not decode: whole when its last seq was read
	// (a segment's last message has the seq its key ends at). Of a
	// compressed segment, what does not decode is the rest of the body
	// its good chunks hold, then its stored bytes from the damaged chunk.
	rest := append(append([]byte(nil), r.v[r.pos:]...), r.tail...)
	r.pos = -1
	if r.n > 0 && r.seq >= r.last {
		return 0, nil, false, false
	}
	seq = r.first
	if r.n > 0 {
		seq = r.seq + 1
	}
	return seq, rest, true, true
}

func (r *segReader) decodeOne() (uint64, []byte, bool) {
	b := r.v[r.pos:]
	d, k := binary.Uvarint(b)
	base := r.first
	if r.n > 0 {
		base = r.seq
		if d == 0 {
			return 0, nil, false
		}
	}
	if k <= 0 || len(b) < k+1 || d > r.last-base {
		return 0, nil, false
	}
	seq := base + d
	flags := b[k]
	b = b[k+1:]
	used := k + 1
	lenBytes := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, false
		}
		out := b[k : k+int(n)]
		b = b[k+int(n):]
		used += k + int(n)
		return out, true
	}
	var val []byte
	if flags&segRaw != 0 {
		raw, ok := lenBytes()
		if !ok {
			return 0, nil, false
		}
		val = append([]byte(nil), raw...)
	} else {
		if flags&^(segRetain|3<<segQoSShift|segSameTopic|segSameDevice) != 0 {
			return 0, nil, false
		}
		dt, k := binary.Varint(b)
		if k <= 0 {
			return 0, nil, false
		}
		b = b[k:]
		used += k
		topic, device := r.topic, r.device
		if flags&segSameTopic == 0 {
			t, ok := lenBytes()
			if !ok {
				return 0, nil, false
			}
			topic = t
		} else if r.n == 0 {
			return 0, nil, false
		}
		if flags&segSameDevice == 0 {
			dv, ok := lenBytes()
			if !ok {
				return 0, nil, false
			}
			device = dv
		} else if r.n == 0 {
			return 0, nil, false
		}
		payload, ok := lenBytes()
		if !ok {
			return 0, nil, false
		}
		t := r.time + dt
		val = make([]byte, 0, 11+uvarintLen(len(topic))+len(topic)+uvarintLen(len(device))+len(device)+len(payload))
		val = append(val, encVersion, flags&segRetain, flags>>segQoSShift&3)
		val = binary.BigEndian.AppendUint64(val, uint64(t))
		val = binary.AppendUvarint(val, uint64(len(topic)))
		val = append(val, topic...)
		val = binary.AppendUvarint(val, uint64(len(device)))
		val = append(val, device...)
		val = append(val, payload...)
		r.time, r.topic, r.device = t, topic, device
	}
	r.pos += used
	r.seq = seq
	r.n++
	return seq, val, true
}

// --- reading segments ---

// forSegments calls fn for every message of route rid from seq from on, in
// order, skipping the marked ones (marked may be nil), until fn says stop.
// Values are fresh slices.
func forSegments(txn *badger.Txn, rid uint32, from uint64, marked func(uint64) bool, fn func(seq uint64, val []byte, damaged bool) (bool, error)) error {
	pfx := routePrefix(pSeg, rid)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: pfx})
	defer it.Close()
	for it.Seek(segSeek(rid, from)); it.Valid(); it.Next() {
		item := it.Item()
		_, first, last, ok := parseSegKey(item.Key())
		if !ok {
			continue
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("reading segment %d..%d: %w", first, last, err)
		}
		r := newSegReader(first, last, v)
		for {
			seq, val, damaged, ok := r.next()
			if !ok {
				break
			}
			if seq < from || (marked != nil && marked(seq)) {
				continue
			}
			more, err := fn(seq, val, damaged)
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// readSeg reads the message seq of route rid from its segment: nil when
// there is none (removed, or never written).
func readSeg(txn *badger.Txn, rid uint32, seq uint64) ([]byte, error) {
	pfx := routePrefix(pSeg, rid)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: pfx})
	defer it.Close()
	it.Seek(segSeek(rid, seq))
	if !it.Valid() {
		return nil, nil
	}
	item := it.Item()
	_, first, last, ok := parseSegKey(item.Key())
	if !ok || first > seq || seq > last {
		return nil, nil
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("reading segment %d..%d: %w", first, last, err)
	}
	r := newSegReader(first, last, v)
	for {
		s, val, _, ok := r.next()
		if !ok || s > seq {
			return nil, nil
		}
		if s == seq {
			return val, nil
		}
	}
}

// readMarks returns the markers of route rid, in seq order.
func readMarks(txn *badger.Txn, rid uint32) []uint64 {
	pfx := routePrefix(pMark, rid)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: pfx})
	defer it.Close()
	var out []uint64
	for it.Rewind(); it.Valid(); it.Next() {
		if k := it.Item().Key(); len(k) == 13 {
			out = append(out, binary.BigEndian.Uint64(k[5:]))
		}
	}
	return out
}

func isMarked(marks []uint64, seq uint64) bool {
	_, ok := slices.BinarySearch(marks, seq)
	return ok
}

// deadSegments returns the keys of the segments of rid wholly below head
// whose last seq is from or more (at most max). A seek from the route's
// start would walk the tombstones of every segment deleted before, on
// every commit.
func deadSegments(txn *badger.Txn, rid uint32, from, head uint64, max int) [][]byte {
	pfx := routePrefix(pSeg, rid)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: pfx})
	defer it.Close()
	var out [][]byte
	for it.Seek(segSeek(rid, from)); it.Valid() && len(out) < max; it.Next() {
		k := it.Item().Key()
		if len(k) >= 13 && binary.BigEndian.Uint64(k[5:]) >= head {
			break
		}
		out = append(out, it.Item().KeyCopy(nil))
	}
	return out
}

// --- migration from the old format ---

// migrateBatch bounds the old records one migration transaction converts.
const migrateBatch = 1024

// migrate converts the messages a queue holds in the old format (one "m"
// entry per message, as every edgegw before segments wrote them) into
// segments, route by route, in seq order, before the queue takes or hands
// out anything: each transaction writes the segments (segSplit) of up to
// migrateBatch messages with the deletes of their old entries and is
// synced (value log first) before the next, so a crash in the middle leaves every message in
// exactly one of the two forms and the next Open goes on where it stopped.
// Old entries below the route's head were acked (the old format deleted
// them behind the head): they are deleted, not converted. A record that
// does not read is carried over as it is (Next moves it to the dead
// letters as damaged). The route's counts do not change: a message's size
// is that of its per-message encoding in both forms.
//
// There is no way back: an edgegw from before segments reads no message
// of a migrated queue (its meta still counts them). Downgrading needs the
// queue drained first (or exported with `edgegw queue export`).
func (q *Queue) migrate() error {
	ids := make([]uint32, 0, len(q.byID))
	for id := range q.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		rt := q.byID[id]
		converted, err := q.migrateRoute(rt)
		if err != nil {
			return fmt.Errorf("migrating route %q to the segment format: %w", rt.name, err)
		}
		if converted > 0 {
			q.log.Info("queue route migrated to the segment format", "route", rt.name, "messages", converted)
		}
	}
	return nil
}

func (q *Queue) migrateRoute(rt *route) (int, error) {
	converted := 0
	for from := uint64(0); ; {
		var dels [][]byte
		sp := segSplit{rt: rt}
		size, nconv, more := 0, 0, false
		err := q.db.View(func(txn *badger.Txn) error {
			pfx := routePrefix(pMsg, rt.id)
			it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: pfx})
			defer it.Close()
			for it.Seek(msgKey(pMsg, rt.id, from)); it.Valid(); it.Next() {
				if len(dels) >= migrateBatch || size >= txnBudget/2 {
					more = true
					return nil
				}
				item := it.Item()
				k := item.KeyCopy(nil)
				dels = append(dels, k)
				if len(k) != 13 {
					continue // not a message key: nothing to convert
				}
				seq := binary.BigEndian.Uint64(k[5:])
				from = seq + 1
				if seq < rt.disk.head {
					continue
				}
				v, err := item.ValueCopy(nil)
				if err != nil {
					return fmt.Errorf("reading message %d: %w", seq, err)
				}
				sp.add(seq, v)
				size += len(v)
				nconv++
			}
			return nil
		})
		if err != nil || len(dels) == 0 {
			return converted, err
		}
		sp.flush()
		ops := sp.out
		for _, k := range dels {
			ops = append(ops, op{key: k, del: true})
		}
		if err := q.writeSynced(ops); err != nil {
			return converted, err
		}
		converted += nconv
		if !more {
			return converted, nil
		}
	}
}

// writeSynced writes ops as one transaction and syncs it, with log syncers
// of its own taken before the write (Open's migration).
func (q *Queue) writeSynced(ops []op) error {
	wal, vlog, err := newLogSyncers(q.dir)
	if err != nil {
		return err
	}
	defer wal.close()
	defer vlog.close()
	if err := q.write(ops); err != nil {
		return err
	}
	return q.logs.syncWAL(wal, vlog)
}

// soleSegment returns the key of the segment of route rid that holds seq
// alone, if there is one.
func soleSegment(txn *badger.Txn, rid uint32, seq uint64) []byte {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: routePrefix(pSeg, rid)})
	defer it.Close()
	it.Seek(segSeek(rid, seq))
	if !it.Valid() {
		return nil
	}
	if _, first, last, ok := parseSegKey(it.Item().Key()); ok && first == seq && last == seq {
		return it.Item().KeyCopy(nil)
	}
	return nil
}
