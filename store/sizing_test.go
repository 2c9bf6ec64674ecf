package store

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
)

// TestSizingBuilderFitsFirstBuffer builds encrypted tables as a compaction
// does (entries until ReachedCapacity) and as a memtable flush does (a whole
// memtable, whatever the capacity), with badger's own table.Builder, for
// the entry sizes the queue writes (a segment is up to valueThreshold, the
// worst case fills a block half), and checks what each builder took from
// its allocator. On 32-bit every byte must come from the allocator's first
// buffer (ristretto's second buffer corrupts memory there; badgerSizing), with
// room left for the blocks the encrypting goroutines have not counted yet
// on a machine of up to maxCPUs cores. On 64-bit a second buffer costs
// memory only (2 x the first), so the test reports how close it came.
func TestSizingBuilderFitsFirstBuffer(t *testing.T) {
	const maxCPUs = 8
	for _, intSize := range []int{32, 64} {
		memTable, baseTable, block, threshold := badgerSizing(intSize)
		first := firstBuffer(baseTable)
		// Blocks a builder has filled beyond what ReachedCapacity counts:
		// badger's blockChan (2 x 2 x NumCPU) and its 2 x NumCPU
		// encrypting goroutines, each a block and its encrypted copy.
		lag := uint64(6 * maxCPUs * (2*block + 256 + 16))
		// Small entries, and the worst: just over half a block (one a block)
		// and just under the value threshold.
		sizes := []int{100, 1000, block/2 + 64, threshold - 64}
		slices.Sort(sizes)
		for _, size := range slices.Compact(sizes) {
			if size >= threshold {
				continue
			}
			for _, flush := range []bool{false, true} {
				used := builderBytes(t, baseTable, memTable, block, size, flush)
				switch {
				case intSize == 64:
					t.Logf("64-bit, %d-byte entries, flush %v: %d of the first buffer's %d bytes", size, flush, used, first)
				case used > first:
					t.Errorf("32-bit, %d-byte entries, flush %v: the builder took %d bytes, more than its allocator's first buffer (%d): a second buffer corrupts memory on 32-bit (badgerSizing)",
						size, flush, used, first)
				case used+lag > first:
					t.Errorf("32-bit, %d-byte entries, flush %v: the builder took %d of %d bytes; %d more may be in flight on %d cores (badgerSizing)",
						size, flush, used, first, lag, maxCPUs)
				default:
					t.Logf("32-bit, %d-byte entries, flush %v: %d of %d bytes, %d left for %d in flight", size, flush, used, first, first-used, lag)
				}
			}
		}
	}
}

// firstBuffer is the size of a table builder's first allocator buffer:
// ristretto's NewAllocator rounds 2 x TableSize up to a power of two.
func firstBuffer(tableSize int64) uint64 {
	return 1 << bits.Len64(uint64(2*tableSize)-1)
}

// builderBytes builds one encrypted table of size-byte values with badger's
// table.Builder and returns the bytes its allocator handed out (over every
// buffer; Size is what a 64-bit allocator counts, whatever 32-bit does): until
// ReachedCapacity (a compaction's builder), or memTable bytes of entries (a
// memtable flush builds the whole memtable into one table).
func builderBytes(t *testing.T, tableSize, memTable int64, block, size int, flush bool) uint64 {
	// The builder takes its allocator from the pool: this one, made as
	// NewTableBuilder would (2 x TableSize), so that its count can be read.
	pool := z.NewAllocatorPool(1)
	defer pool.Release()
	a := z.NewAllocator(int(2*tableSize), "test")
	pool.Return(a)
	b := table.NewTableBuilder(table.Options{
		TableSize: uint64(tableSize), BlockSize: block, BloomFalsePositive: 0.01,
		Compression: options.None, AllocPool: pool,
		DataKey: &pb.DataKey{KeyId: 1, Data: bytes.Repeat([]byte{7}, 32), Iv: bytes.Repeat([]byte{1}, 16)},
	})
	val := bytes.Repeat([]byte{'v'}, size)
	var added int64
	for i := uint64(0); ; i++ {
		if flush && added >= memTable || !flush && b.ReachedCapacity() {
			break
		}
		key := make([]byte, 21) // a segment's key: "g" route(4) last(8) first(8)
		key[0] = 'g'
		binary.BigEndian.PutUint64(key[5:], i)
		b.Add(y.KeyWithTs(key, 1), y.ValueStruct{Value: val}, 0)
		added += int64(len(key) + size)
	}
	if len(b.Finish()) == 0 {
		t.Fatal("the builder built an empty table")
	}
	used := uint64(a.Size())
	b.Close()
	return used
}

// TestSizingOldWALReplays: a queue left by a crash of a build with larger
// memtables (2 MiB, before they were 1 MiB on 64-bit) holds a write-ahead
// log fuller than today's memtable arena; Open replays it at the size that
// wrote it (openDB) instead of failing badger's arena assertion, which
// exits the process. The crash is a copy of the queue's files taken while
// it is open, after every message was synced.
func TestSizingOldWALReplays(t *testing.T) {
	const old = 2 << 20
	if memTableSize >= old {
		t.Skipf("memtables are %d bytes on this platform: no smaller than the old 2 MiB (nothing to upgrade from)", memTableSize)
	}
	now := memTableSize
	memTableSize = old
	defer func() { memTableSize = now }()
	dir := filepath.Join(t.TempDir(), "q")
	q := openT(t, Options{Dir: dir, Routes: []RouteLimits{{Name: "r"}}})
	payload := bytes.Repeat([]byte{'p'}, 1000)
	const n = 1400 // about 1.45 MB of log: more than a 1 MiB memtable's arena, less than a full 2 MiB one
	submitAll(t, q, n, func(int) Message { return Message{Route: "r", Topic: "t/r", Payload: payload, QoS: 1} })
	crash := filepath.Join(t.TempDir(), "crash")
	if err := os.CopyFS(crash, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	memTableSize = now
	if got := walMemTableSize(crash); got != old {
		t.Fatalf("the crash copy's write-ahead logs are for %d-byte memtables; want %d", got, old)
	}
	if ssts, _ := filepath.Glob(filepath.Join(crash, "*.sst")); len(ssts) > 0 {
		t.Fatalf("the crash copy has tables %v: the messages must be in the write-ahead log alone", ssts)
	}
	q = openT(t, Options{Dir: crash, Routes: []RouteLimits{{Name: "r"}}})
	if d := q.Stats().Depth; d != n {
		t.Fatalf("reopened after the crash: depth %d; want %d", d, n)
	}
	for i := range n {
		if m := next(t, q); !bytes.Equal(m.Payload, payload) {
			t.Fatalf("message %d of %d: payload of %d bytes; want the %d written", i, n, len(m.Payload), len(payload))
		}
	}
	if w := walMemTableSize(crash); w != now {
		t.Errorf("after the reopen the write-ahead logs are for %d-byte memtables; want today's %d", w, now)
	}
}
