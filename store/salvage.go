package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// SalvageReport counts what Open copied out of a queue it moved aside.
type SalvageReport struct {
	Messages    int    // messages copied, with their route, sequence number and order
	DeadLetters int    // dead letters copied
	Keys        int    // key-space records copied (KV: device shadows and their outbox)
	Lost        int    // records that could not be read (their value or their route)
	Err         string // why nothing or not everything could be read; "" when all was
}

// salvage copies every readable record of the queue moved aside to from
// into db, a new empty queue, before load reads it: the route registry with
// the same route ids, messages and dead letters under the same keys (so
// route, sequence number and order are kept), the sequence mark, and the
// records of the key spaces (kv.go: device shadows live there). The
// route meta is not copied: load counts each route once from its messages.
// The old queue is opened with badger after the same repairs Open makes; a
// queue badger cannot open at all yields an empty report with Err set.
func salvage(db *badger.DB, from string, opts badger.Options) (SalvageReport, error) {
	var r SalvageReport
	if _, err := repairDir(from); err != nil {
		r.Err = err.Error()
		return r, nil
	}
	opts.Dir, opts.ValueDir = from, from
	old, err := openDB(opts.WithLogger(nil))
	if err != nil {
		r.Err = fmt.Sprintf("opening the moved-aside queue: %v", err)
		return r, nil
	}
	defer old.Close()
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	rids := map[uint32]bool{}
	err = old.View(func(txn *badger.Txn) error {
		// The registry first, then the records: a message whose route is
		// not registered gets a route named after its id.
		for _, prefix := range []byte{pReg, pMeta, pSeg, pMark, pMsg, pDead, hwmKey[0], pKV} {
			if err := salvagePrefix(txn, wb, prefix, rids, &r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("salvaging %q: %w", from, err)
	}
	if err := wb.Flush(); err != nil {
		return r, fmt.Errorf("salvaging %q: writing: %w", from, err)
	}
	if err := db.Sync(); err != nil {
		return r, fmt.Errorf("salvaging %q: syncing: %w", from, err)
	}
	return r, nil
}

func salvagePrefix(txn *badger.Txn, wb *badger.WriteBatch, prefix byte, rids map[uint32]bool, r *SalvageReport) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := item.KeyCopy(nil)
		v, err := item.ValueCopy(nil)
		if err == nil && prefix == pMeta {
			// Not copied (load recounts the route), but its head is: below
			// it the segments hold acked messages.
			if m, derr := decodeMeta(v); derr == nil && len(k) == 5 {
				if err := wb.Set(append([]byte{pHead}, k[1:]...), be64(m.head)); err != nil {
					return err
				}
			}
			continue
		}
		if err == nil && prefix == pSeg {
			if k, v, err = salvageSegment(k, v, r); err != nil {
				return err
			}
			if k == nil {
				continue
			}
		}
		if err != nil || !whole(k, v) {
			r.Lost++
			if r.Err == "" {
				r.Err = fmt.Sprintf("record %x: %v", k, cmp.Or(err, errBadRecord))
			}
			continue
		}
		switch prefix {
		case pReg:
			rids[binary.BigEndian.Uint32(v)] = true
		case pMsg, pDead, pSeg:
			if rid := binary.BigEndian.Uint32(k[1:]); !rids[rid] {
				rids[rid] = true
				name := fmt.Sprintf("salvaged-route-%d", rid)
				if err := wb.Set(append([]byte{pReg}, name...), binary.BigEndian.AppendUint32(nil, rid)); err != nil {
					return err
				}
			}
			switch prefix {
			case pMsg:
				r.Messages++
			case pSeg: // counted by salvageSegment
			default:
				r.DeadLetters++
			}
		case pKV:
			r.Keys++
		}
		if err := wb.Set(k, v); err != nil {
			return err
		}
	}
	return nil
}

// whole says whether the record (k, v) reads: a registry entry names a
// 4-byte route id, messages and dead letters decode, the sequence mark is
// 8 bytes, a key-space record's key names its space. The route meta is not
// copied (load recounts it).
func whole(k, v []byte) bool {
	switch k[0] {
	case pReg:
		return len(v) == 4
	case pMsg:
		var m Message
		return len(k) == 13 && decodeMessage(v, &m) == nil
	case pSeg: // salvageSegment made it so
		return true
	case pMark:
		return len(k) == 13 && len(v) == 0
	case pDead:
		var d DeadLetter
		return len(k) == 13 && decodeDead(v, &d) == nil
	case hwmKey[0]:
		return len(k) == 1 && len(v) == 8
	case pKV:
		return bytes.IndexByte(k[1:], 0) > 0 // "k" space NUL key
	}
	return false
}

// salvageSegment returns the segment (k, v) with the messages of it that
// read, counted in r, and counts the rest lost: the segment itself when
// all of it reads, one re-encoded from its readable messages when only some
// do, nil when none does.
func salvageSegment(k, v []byte, r *SalvageReport) ([]byte, []byte, error) {
	rid, first, last, ok := parseSegKey(k)
	if !ok {
		r.Lost++
		if r.Err == "" {
			r.Err = fmt.Sprintf("record %x: %v", k, errBadRecord)
		}
		return nil, nil, nil
	}
	var w segWriter
	w.reset(nil)
	damaged := false
	rd := newSegReader(first, last, v)
	for {
		seq, val, bad, ok := rd.next()
		if !ok {
			break
		}
		if bad {
			damaged = true
			continue
		}
		w.add(seq, val)
	}
	r.Messages += w.n
	if damaged {
		r.Lost++
		if r.Err == "" {
			r.Err = fmt.Sprintf("segment %x: messages after %d: %v", k, rd.seq, errBadRecord)
		}
	}
	switch {
	case w.n == 0:
		return nil, nil, nil
	case damaged:
		return segKey(rid, w.first, w.last), w.b, nil
	}
	return k, v, nil
}
