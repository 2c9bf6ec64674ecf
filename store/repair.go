package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Repairs Open makes to badger's files before badger opens them: the states
// a crash (kill -9 or a power cut) can leave that badger v4.9.6 refuses or
// mishandles, although no acknowledged data is in the damaged part. Each is
// undone in the least destructive way, logged at Warn and returned in
// OpenReport (a metric and an audit record for the daemon). What badger
// handles on its own (a torn last record in the write-ahead log or the last
// value-log file, a MANIFEST cut inside a change record) is left to it.
//
// What badger does with these files:
//
//   - "NNNNN.mem" (memtable write-ahead log) and "NNNNNN.vlog" (value log)
//     are created empty, then extended (ftruncate) to their mmap size, then
//     get a 20-byte header (key id and IV) through the mmap. logFile.open
//     bootstraps a file it finds empty and returns z.NewFile, which
//     openMemTables and valueLog.open treat as fatal ("Create a new file").
//     A crash after the create and before the extension leaves exactly that
//     (badger's own Open creates a new value-log file every time, so a
//     kill -9 during Open is enough). A file shorter than the header holds
//     no entry either. No entry means nothing refers to the file: removing
//     it loses nothing.
//   - "DISCARD" (value-log GC statistics, 16-byte slots, 1 MiB or more)
//     cut short: with no zero slot left badger writes slot 0 over, and a
//     file under 16 bytes makes the first GC statistic panic (index out of
//     range) in a goroutine. The slots are hints for GC: the file is cut to
//     whole slots and extended with zero slots to at least 1 MiB.
//   - "MANIFEST": magic, then change records (length, CRC-32C, body), each
//     appended and synced before badger acts on it (deletes a memtable log
//     or a table). ReplayManifestFile stops quietly at a record cut inside
//     its header or body, but refuses the whole file when the cut record's
//     length is larger than the file ("Buffer length: 40 greater than file
//     size: 26", which a small MANIFEST gets from any torn append) and when
//     the last record's checksum does not match (a power cut that kept the
//     new size, not the new bytes). Such a last record was never synced, so
//     nothing was done on its strength: it is cut off.
//   - "MANIFEST" shorter than its 8-byte magic: badger refuses it (bad
//     magic). When there is no table (.sst) it describes nothing and is
//     removed; with tables it cannot be rebuilt here, and the queue is
//     salvaged (salvage.go).

// RepairKind names one kind of repair (a metric label).
type RepairKind string

const (
	// RepairEmptyLog: a zero-length .mem or .vlog file, removed.
	RepairEmptyLog RepairKind = "empty-log"
	// RepairShortHeader: a .mem or .vlog file shorter than its 20-byte
	// header, removed.
	RepairShortHeader RepairKind = "short-log-header"
	// RepairDiscard: a DISCARD file cut short, cut to whole slots and
	// extended with empty ones.
	RepairDiscard RepairKind = "discard-cut-short"
	// RepairManifestTail: a MANIFEST whose last change record was not
	// written whole, cut before it.
	RepairManifestTail RepairKind = "manifest-torn-record"
	// RepairManifest: a MANIFEST shorter than its magic with no table beside
	// it, removed (badger writes a new one).
	RepairManifest RepairKind = "manifest-cut-short"
)

// Repair is one change Open made to the queue's files.
type Repair struct {
	Kind RepairKind
	File string // base name in the queue directory, e.g. "000002.vlog"
	Size int64  // its size before the repair
	Did  string // what was done, e.g. "removed", "extended to 1048576 bytes"
}

func (r Repair) String() string {
	return fmt.Sprintf("%s: %s (%d bytes): %s", r.Kind, r.File, r.Size, r.Did)
}

// OpenReport is what Open had to do to open the queue: the daemon logs it,
// audits it when it is not empty and counts it (Repairs by kind, salvaged and
// lost messages).
type OpenReport struct {
	Repairs []Repair
	// MovedTo is set when the queue could not be opened even after the
	// repairs and was moved aside ("<dir>.corrupt-<n>").
	MovedTo string
	// Salvage is what was copied from the moved-aside queue into the new one.
	Salvage SalvageReport
}

// Empty says whether Open found the queue as it left it.
func (r OpenReport) Empty() bool { return len(r.Repairs) == 0 && r.MovedTo == "" }

const (
	logHeaderSize = 20      // badger: vlogHeaderSize, of .mem and .vlog files
	discardSlot   = 16      // badger: discard.go, one (fid, discard) pair
	discardMin    = 1 << 20 // badger: the size InitDiscardStats creates
	manifestMagic = 8       // badger: magicText + versions
)

// repairDir applies the repairs above to dir, before badger opens it. It
// holds badger's directory lock (flock of the directory) while it looks:
// the files of a queue another process has open are not touched (a value
// log that process just created is empty for a moment).
func repairDir(dir string) ([]Repair, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("opening queue directory: %w", err)
	}
	defer d.Close() // releases the lock
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil, fmt.Errorf("locking queue directory for repairs: %w", err)
	}
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("listing queue files: %w", err)
	}
	var reps []Repair
	hasTable := false
	for _, e := range ents {
		hasTable = hasTable || strings.HasSuffix(e.Name(), ".sst")
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return reps, fmt.Errorf("reading queue file %s: %w", name, err)
		}
		path, size := filepath.Join(dir, name), info.Size()
		var r *Repair
		switch {
		case isLogFile(name) && size < logHeaderSize:
			r = &Repair{Kind: RepairShortHeader, File: name, Size: size, Did: "removed"}
			if size == 0 {
				r.Kind = RepairEmptyLog
			}
			err = os.Remove(path)
		case name == "DISCARD" && size > 0 && (size < discardMin || size%discardSlot != 0):
			to := max(discardMin, size-size%discardSlot+discardSlot)
			r = &Repair{Kind: RepairDiscard, File: name, Size: size, Did: fmt.Sprintf("cut to whole slots, extended to %d bytes", to)}
			err = repairDiscard(path, size, to)
		case name == "MANIFEST" && size < manifestMagic && !hasTable:
			r = &Repair{Kind: RepairManifest, File: name, Size: size, Did: "removed (no table refers to it)"}
			err = os.Remove(path)
		case name == "MANIFEST" && size >= manifestMagic:
			var end int64
			if end, err = manifestEnd(path); err == nil && end < size {
				r = &Repair{Kind: RepairManifestTail, File: name, Size: size, Did: fmt.Sprintf("cut to %d bytes", end)}
				err = truncateSync(path, end)
			}
		}
		if err != nil {
			return reps, fmt.Errorf("repairing queue file %s: %w", name, err)
		}
		if r != nil {
			reps = append(reps, *r)
		}
	}
	if len(reps) > 0 {
		if err := syncDir(dir); err != nil {
			return reps, fmt.Errorf("syncing the queue directory after repairs: %w", err)
		}
	}
	return reps, nil
}

// isLogFile: badger's "%05d.mem" and "%06d.vlog".
func isLogFile(name string) bool {
	for _, ext := range []string{".mem", ".vlog"} {
		if stem, ok := strings.CutSuffix(name, ext); ok {
			_, err := strconv.ParseUint(stem, 10, 32)
			return err == nil
		}
	}
	return false
}

// repairDiscard cuts the DISCARD file to whole slots and extends it to size
// to with zero slots (badger: a zero fid ends the used slots).
func repairDiscard(path string, size, to int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size - size%discardSlot)
	if err == nil {
		err = f.Truncate(to)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// manifestEnd returns where the whole records of the MANIFEST at path end:
// before a last record cut short or with a checksum that does not match.
// A record that does not match and is not the last is left to badger (it
// refuses the file: the queue is salvaged).
func manifestEnd(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	off := manifestMagic
	for off+8 <= len(b) {
		n := int(binary.BigEndian.Uint32(b[off:]))
		sum := binary.BigEndian.Uint32(b[off+4:])
		end := off + 8 + n
		if n < 0 || end > len(b) {
			return int64(off), nil // cut inside its body
		}
		if crc32.Checksum(b[off+8:end], castagnoli) != sum && end == len(b) {
			return int64(off), nil
		}
		off = end
	}
	return int64(off), nil // a header cut short, or nothing after the last record
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
