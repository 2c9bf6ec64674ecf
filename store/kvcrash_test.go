package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The key-value space in the crash and power-cut harnesses: beside the
// queue, the soak child (soak_test.go) writes versioned documents the way
// the device shadows do, and the parent checks them after every kill and
// every power-cut copy.
//
// Space "soak-kv" holds, for each document i in [0, kvDocs):
//
//	"doc/NN"  -> i(4) version(8) crc32c(4) payload   absent once deleted
//	"meta/NN" -> version(8) deleted(1)
//
// written together in one Write (all or none), one writer per document, so
// the two always agree. The payload is the byte kvFill(i, version) repeated
// (a few hundred bytes, a few KiB, or over valueThreshold: the value log).
// The child prints "K i version" after a Write of a document returns and
// "X i version" after a Write deleting it returns (what a device would be
// told: /accepted). After the kill or the cut, every document printed must
// be there with a version at least as new as the last printed, whole
// (never torn, never an older version, never another document's value),
// its meta agreeing, and deleted exactly when its meta says so.

const (
	kvSpace = "soak-kv"
	kvDocs  = 32
	kvHead  = 4 + 8 + 4 // document header: index, version, crc32c of the payload
)

func kvDocKey(i int) string  { return fmt.Sprintf("doc/%02d", i) }
func kvMetaKey(i int) string { return fmt.Sprintf("meta/%02d", i) }

func kvFill(i int, version uint64) byte { return byte(uint64(i)*7 + version) }

func kvDoc(i int, version uint64, size int) []byte {
	b := make([]byte, kvHead, kvHead+size)
	binary.BigEndian.PutUint32(b, uint32(i))
	binary.BigEndian.PutUint64(b[4:], version)
	b = append(b, bytes.Repeat([]byte{kvFill(i, version)}, size)...)
	binary.BigEndian.PutUint32(b[12:], crc32.Checksum(b[kvHead:], castagnoli))
	return b
}

func kvMeta(version uint64, deleted bool) []byte {
	b := binary.BigEndian.AppendUint64(nil, version)
	if deleted {
		return append(b, 1)
	}
	return append(b, 0)
}

// kvChild writes the documents from two goroutines (document i belongs to
// writer i%2), continuing each document's version from the database, until
// the process is killed. out prints one line.
func kvChild(q *Queue, out func(string)) {
	kv, err := q.KV(kvSpace)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: kv:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	version := make([]uint64, kvDocs)
	deleted := make([]bool, kvDocs)
	for i := range kvDocs {
		v, err := kv.Get(ctx, kvMetaKey(i))
		if errors.Is(err, ErrKeyNotFound) {
			continue
		}
		if err != nil || len(v) != 9 {
			fmt.Fprintf(os.Stderr, "child: kv: reading %s: %v (%d bytes)\n", kvMetaKey(i), err, len(v))
			os.Exit(3)
		}
		version[i], deleted[i] = binary.BigEndian.Uint64(v), v[8] == 1
	}
	for w := range 2 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 100+uint64(w)))
			for {
				i := w + 2*rng.IntN(kvDocs/2)
				v := version[i] + 1
				del := !deleted[i] && rng.IntN(10) == 0
				var doc []byte
				if !del {
					size := 50 + rng.IntN(400)
					switch rng.IntN(20) {
					case 0:
						size = valueThreshold + rng.IntN(valueThreshold) // the value log
					case 1, 2:
						size = 2048 + rng.IntN(6<<10)
					}
					doc = kvDoc(i, v, size)
				}
				if err := kv.Write(ctx, []KVOp{{Key: kvDocKey(i), Value: doc}, {Key: kvMetaKey(i), Value: kvMeta(v, del)}}); err != nil {
					fmt.Fprintln(os.Stderr, "child: kv write:", err)
					os.Exit(3)
				}
				version[i], deleted[i] = v, del
				if del {
					out("X " + strconv.Itoa(i) + " " + strconv.FormatUint(v, 10) + "\n")
				} else {
					out("K " + strconv.Itoa(i) + " " + strconv.FormatUint(v, 10) + "\n")
				}
			}
		}()
	}
}

// kvAck is the last acknowledged Write of one document.
type kvAck struct {
	version uint64
	deleted bool
}

// kvAcked adds the documents' acknowledged Writes in lines to acked (a
// newer version replaces an older one; versions only grow across runs).
func kvAcked(lines []string, acked map[int]kvAck) {
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || (f[0] != "K" && f[0] != "X") {
			continue
		}
		i, err1 := strconv.Atoi(f[1])
		v, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if a, ok := acked[i]; !ok || v > a.version {
			acked[i] = kvAck{version: v, deleted: f[0] == "X"}
		}
	}
}

// checkKV checks the documents of q against what was acknowledged: every
// acknowledged document is there at least as new, whole, its meta agreeing;
// no key is there that the child never wrote. It returns the number of
// documents checked.
func checkKV(q *Queue, acked map[int]kvAck) (int, error) {
	kv, err := q.KV(kvSpace)
	if err != nil {
		return 0, err
	}
	defer kv.Close()
	ctx := context.Background()
	keys, err := kv.List(ctx, "")
	if err != nil {
		return 0, err
	}
	var want []string
	for i := range kvDocs {
		want = append(want, kvDocKey(i), kvMetaKey(i))
	}
	for _, k := range keys {
		if !slices.Contains(want, k) {
			return 0, fmt.Errorf("kv: key %q that no Write made (keys %q)", k, keys)
		}
	}
	var problems []string
	for i := range kvDocs {
		if err := checkKVDoc(ctx, kv, i, acked); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return 0, fmt.Errorf("kv: %d of %d documents wrong: %s", len(problems), kvDocs, strings.Join(problems, "; "))
	}
	return len(acked), nil
}

func checkKVDoc(ctx context.Context, kv *KV, i int, acked map[int]kvAck) error {
	a, isAcked := acked[i]
	m, err := kv.Get(ctx, kvMetaKey(i))
	d, derr := kv.Get(ctx, kvDocKey(i))
	if errors.Is(err, ErrKeyNotFound) {
		if isAcked {
			return fmt.Errorf("%s: acknowledged at version %d (deleted %v), now missing", kvMetaKey(i), a.version, a.deleted)
		}
		if !errors.Is(derr, ErrKeyNotFound) {
			return fmt.Errorf("%s: there (%v) without its meta", kvDocKey(i), derr)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %v", kvMetaKey(i), err)
	}
	if len(m) != 9 || m[8] > 1 {
		return fmt.Errorf("%s: torn: %x", kvMetaKey(i), m)
	}
	version, deleted := binary.BigEndian.Uint64(m), m[8] == 1
	if isAcked && (version < a.version || version == a.version && deleted != a.deleted) {
		return fmt.Errorf("%s: version %d (deleted %v); acknowledged version %d (deleted %v)", kvMetaKey(i), version, deleted, a.version, a.deleted)
	}
	if deleted {
		if !errors.Is(derr, ErrKeyNotFound) {
			return fmt.Errorf("%s: there (%d bytes, %v) though its meta says deleted at version %d", kvDocKey(i), len(d), derr, version)
		}
		return nil
	}
	if derr != nil {
		return fmt.Errorf("%s: meta says version %d: %v", kvDocKey(i), version, derr)
	}
	if len(d) < kvHead {
		return fmt.Errorf("%s: torn: %d bytes", kvDocKey(i), len(d))
	}
	di, dv := int(binary.BigEndian.Uint32(d)), binary.BigEndian.Uint64(d[4:])
	if di != i || dv != version {
		return fmt.Errorf("%s: holds document %d version %d; meta says version %d", kvDocKey(i), di, dv, version)
	}
	if crc32.Checksum(d[kvHead:], castagnoli) != binary.BigEndian.Uint32(d[12:]) || bytes.Count(d[kvHead:], []byte{kvFill(i, version)}) != len(d)-kvHead {
		return fmt.Errorf("%s: version %d, %d bytes: payload damaged", kvDocKey(i), version, len(d))
	}
	return nil
}
