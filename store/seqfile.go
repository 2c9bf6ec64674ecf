package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The sequence high-water mark is kept twice: in badger (key "s", in the
// transaction that first uses a new block) and in "<dir>.seq", a small file
// beside the queue directory, written and synced before any sequence number
// of a new block is used. The file is outside the badger directory so that
// it survives what the directory does not: a queue moved aside as corrupt
// ("<dir>.corrupt-<n>") or removed by hand. The new queue then continues
// above every sequence number ever handed out: the cloud drops duplicates by
// (device, seq), so a seq used twice would make it drop a new message.
//
// Format: the decimal mark and a newline; replaced atomically (temporary
// file, fsync, rename, fsync of the parent directory).

func seqPath(dir string) string { return strings.TrimRight(dir, "/") + ".seq" }

// readSeqFile returns the mark in path, 0 when there is no file.
func readSeqFile(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("sequence mark file %s: %w: %q", path, errBadRecord, b)
	}
	return v, nil
}

// writeSeqFile replaces the mark in path with v, durably.
func writeSeqFile(path string, v uint64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing the sequence mark: %w", err)
	}
	_, err = f.WriteString(strconv.FormatUint(v, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("writing the sequence mark %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
