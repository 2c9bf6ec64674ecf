package presence

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// FileName is the presence file's name in the state directory.
const FileName = "presence.json"

// State is a thing's presence.
type State string

// The states, in the order status prints them.
const (
	Online State = "online"
	// Offline: registered, seen before, not connected now.
	Offline State = "offline"
	// NeverSeen: registered, never connected since presence was kept.
	NeverSeen State = "never_seen"
	// Unlisted: connected, not listed in the registry (admitted by a group's
	// name pattern); gone from the list once it disconnects.
	Unlisted State = "unlisted"
)

// States lists every State in display order.
var States = []State{Online, Offline, NeverSeen, Unlisted}

// Conn is one accepted connection, as the broker knows it.
type Conn struct {
	Thing        string
	ClientID     string
	Listener     string
	Remote       string    // ip:port
	Serial       string    // certificate serial, hex ("" without a certificate)
	CertNotAfter time.Time // zero without a certificate
}

// key identifies a live connection: no two open TCP connections share a
// listener and a remote address.
func (c Conn) key() string { return c.Listener + "\x00" + c.Remote }

// Registered is one thing of the registry.
type Registered struct {
	Name string
	Type string
}

// Device is one thing's presence.
type Device struct {
	Thing        string    `json:"thing"`
	Type         string    `json:"type"`
	State        State     `json:"state"`
	Connected    bool      `json:"connected"`
	Connections  int       `json:"connections"`
	Since        time.Time `json:"since,omitzero"`     // when the current state began (zero: never seen)
	LastSeen     time.Time `json:"last_seen,omitzero"` // now while connected, else when the last connection ended
	LastRemote   string    `json:"last_remote,omitempty"`
	LastClientID string    `json:"last_client_id,omitempty"`
	Listener     string    `json:"listener,omitempty"`
	CertSerial   string    `json:"cert_serial,omitempty"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
}

// record is what is kept of one thing (and written to the file).
type record struct {
	Since        time.Time `json:"since"`
	LastSeen     time.Time `json:"last_seen"`
	LastRemote   string    `json:"last_remote,omitempty"`
	LastClientID string    `json:"last_client_id,omitempty"`
	Listener     string    `json:"listener,omitempty"`
	CertSerial   string    `json:"cert_serial,omitempty"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`

	conns map[string]bool // live connections (never persisted)
}

// file is the presence file's content.
type file struct {
	Version int                `json:"version"`
	Things  map[string]*record `json:"things"`
}

const fileVersion = 1

// maxFileBytes bounds the presence file read at start (about 250 bytes a
// thing: far above any site's registry).
const maxFileBytes = 16 << 20

// Options tune a Tracker.
type Options struct {
	// FlushEvery is the most often the file is written (0 = 10s; <0: only
	// by Flush and Close, for tests).
	FlushEvery time.Duration
	Logger     *slog.Logger
	Now        func() time.Time // nil = time.Now
}

// Tracker keeps the presence of every thing seen. It is safe for
// concurrent use.
type Tracker struct {
	path string
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	things  map[string]*record
	dirty   bool
	dirtied chan struct{} // cap 1: dirty was set (arms flushLoop's timer)
	ticks   atomic.Int64  // flushLoop's timer firings (tests: none while nothing changes)

	writeMu sync.Mutex // one file write at a time
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// ErrCorrupt is returned by Open when the presence file cannot be decoded.
var ErrCorrupt = errors.New("presence file unreadable")

// Open loads dir/presence.json (a missing file is an empty history) and
// starts the background flush. dir "" keeps presence in memory only.
func Open(dir string, opts Options) (*Tracker, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.FlushEvery == 0 {
		opts.FlushEvery = 10 * time.Second
	}
	t := &Tracker{opts: opts, log: opts.Logger.With("component", "presence"), things: map[string]*record{},
		stop: make(chan struct{}), done: make(chan struct{}), dirtied: make(chan struct{}, 1)}
	if dir != "" {
		t.path = filepath.Join(dir, FileName)
		things, err := load(t.path)
		if err != nil {
			return nil, err
		}
		for name, r := range things {
			r.Since = r.LastSeen // every thing starts offline, since it was last seen
			t.things[name] = r
		}
	}
	if t.path != "" && opts.FlushEvery > 0 {
		go t.flushLoop()
	} else {
		close(t.done)
	}
	return t, nil
}

// load reads a presence file as written by a Tracker: what was last seen of
// each thing, none of it connected. A missing file is empty, not an error.
func load(path string) (map[string]*record, error) {
	data, err := readSmall(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading device presence %s: %w", path, err)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %s: %w (remove it to start presence afresh)", ErrCorrupt, path, err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("%w: %s: version %d, this edgegw reads %d (remove it to start presence afresh)", ErrCorrupt, path, f.Version, fileVersion)
	}
	out := make(map[string]*record, len(f.Things))
	for name, r := range f.Things {
		if r != nil {
			out[name] = r
		}
	}
	return out, nil
}

// Snapshot reads a presence file and joins it with registered, for the
// offline commands (the daemon stopped: nothing is connected).
func Snapshot(path string, registered []Registered) ([]Device, error) {
	things, err := load(path)
	if err != nil {
		return nil, err
	}
	for _, r := range things {
		r.Since = r.LastSeen
	}
	return devices(things, registered, time.Now()), nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxFileBytes {
		return nil, fmt.Errorf("not a regular file of at most %d MiB", maxFileBytes>>20)
	}
	return os.ReadFile(path)
}

// Online records an accepted connection.
func (t *Tracker) Online(c Conn) {
	if c.Thing == "" {
		return
	}
	now := t.opts.Now().UTC()
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.things[c.Thing]
	if r == nil {
		r = &record{}
		t.things[c.Thing] = r
	}
	if len(r.conns) == 0 {
		r.Since = now
	}
	if r.conns == nil {
		r.conns = map[string]bool{}
	}
	r.conns[c.key()] = true
	r.LastSeen, r.LastRemote, r.LastClientID, r.Listener = now, c.Remote, c.ClientID, c.Listener
	r.CertSerial, r.CertNotAfter = c.Serial, c.CertNotAfter.UTC()
	t.markDirtyLocked()
}

// Offline records the end of a connection Online recorded; one it did not
// record is ignored.
func (t *Tracker) Offline(c Conn) {
	now := t.opts.Now().UTC()
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.things[c.Thing]
	if r == nil || !r.conns[c.key()] {
		return
	}
	delete(r.conns, c.key())
	r.LastSeen = now
	if len(r.conns) == 0 {
		r.Since = now
	}
	t.markDirtyLocked()
}

// Devices joins the registered things with what was seen: one Device per
// registered thing, plus connected things the registry does not list; sorted
// by name.
func (t *Tracker) Devices(registered []Registered) []Device {
	now := t.opts.Now().UTC()
	t.mu.Lock()
	defer t.mu.Unlock()
	return devices(t.things, registered, now)
}

func devices(things map[string]*record, registered []Registered, now time.Time) []Device {
	out := make([]Device, 0, len(registered))
	listed := make(map[string]bool, len(registered))
	for _, reg := range registered {
		listed[reg.Name] = true
		d := Device{Thing: reg.Name, Type: reg.Type, State: NeverSeen}
		if r := things[reg.Name]; r != nil {
			fill(&d, r, now)
			if !d.Connected {
				d.State = Offline
			}
		}
		out = append(out, d)
	}
	for name, r := range things {
		if listed[name] || len(r.conns) == 0 {
			continue
		}
		d := Device{Thing: name}
		fill(&d, r, now)
		d.State = Unlisted
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Device) int { return cmp.Compare(a.Thing, b.Thing) })
	return out
}

func fill(d *Device, r *record, now time.Time) {
	d.Connections = len(r.conns)
	d.Connected = d.Connections > 0
	if d.Connected {
		d.State = Online
	}
	d.Since, d.LastSeen = r.Since, r.LastSeen
	if d.Connected {
		d.LastSeen = now
	}
	d.LastRemote, d.LastClientID, d.Listener = r.LastRemote, r.LastClientID, r.Listener
	d.CertSerial, d.CertNotAfter = r.CertSerial, r.CertNotAfter
}

// Counts is the number of devices in each state (every state present).
func Counts(devs []Device) map[State]int {
	out := make(map[State]int, len(States))
	for _, s := range States {
		out[s] = 0
	}
	for _, d := range devs {
		out[d.State]++
	}
	return out
}

// OfflineLonger counts the registered things not connected for longer than
// d (never seen ones included: they have not talked for at least that long).
func OfflineLonger(devs []Device, d time.Duration, now time.Time) int {
	n := 0
	for _, dev := range devs {
		switch dev.State {
		case NeverSeen:
			n++
		case Offline:
			if now.Sub(dev.Since) > d {
				n++
			}
		}
	}
	return n
}

// markDirtyLocked notes a change the file does not hold yet.
func (t *Tracker) markDirtyLocked() {
	t.dirty = true
	select {
	case t.dirtied <- struct{}{}:
	default:
	}
}

// flushLoop writes the file FlushEvery after the first change it does not
// hold (so at most once per FlushEvery), and sleeps while nothing changes.
func (t *Tracker) flushLoop() {
	defer close(t.done)
	tick := time.NewTimer(t.opts.FlushEvery)
	tick.Stop()
	defer tick.Stop()
	armed := false
	for {
		select {
		case <-t.stop:
			return
		case <-t.dirtied:
			if !armed {
				armed = true
				tick.Reset(t.opts.FlushEvery)
			}
		case <-tick.C:
			armed = false
			t.ticks.Add(1)
			if err := t.Flush(); err != nil { // the file stays dirty: dirtied re-arms
				t.log.Warn("writing device presence", "err", err)
			}
		}
	}
}

// Flush writes the file now if anything changed since the last write.
func (t *Tracker) Flush() error {
	if t.path == "" {
		return nil
	}
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	t.mu.Lock()
	if !t.dirty {
		t.mu.Unlock()
		return nil
	}
	f := file{Version: fileVersion, Things: make(map[string]*record, len(t.things))}
	for name, r := range t.things {
		c := *r
		c.conns = nil
		if len(r.conns) > 0 {
			c.LastSeen = t.opts.Now().UTC() // connected until now
		}
		f.Things[name] = &c
	}
	t.dirty = false
	t.mu.Unlock()
	data, err := json.Marshal(&f)
	if err == nil {
		err = writeAtomic(t.path, data)
	}
	if err != nil {
		t.mu.Lock()
		t.markDirtyLocked()
		t.mu.Unlock()
		return fmt.Errorf("writing device presence %s: %w", t.path, err)
	}
	return nil
}

// Close stops the background flush and writes the file a last time, every
// connection counted as ended now.
func (t *Tracker) Close() error {
	var err error
	t.once.Do(func() {
		close(t.stop)
		<-t.done
		err = t.Flush()
	})
	return err
}

// writeAtomic replaces path by data: a reader sees the old file or the new
// one, never a part (temporary file in the same directory, fsync, rename,
// fsync of the directory).
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
