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
		for _, prefix := range []byte{pReg, pMsg, pDead, hwmKey[0], pKV} {
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
		case pMsg, pDead:
			if rid := binary.BigEndian.Uint32(k[1:]); !rids[rid] {
				rids[rid] = true
				name := fmt.Sprintf("salvaged-route-%d", rid)
				if err := wb.Set(append([]byte{pReg}, name...), binary.BigEndian.AppendUint32(nil, rid)); err != nil {
					return err
				}
			}
			if prefix == pMsg {
				r.Messages++
			} else {
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
