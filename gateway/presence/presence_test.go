package presence

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

func conn(thing, remote string) Conn {
	return Conn{Thing: thing, ClientID: thing, Listener: "lan", Remote: remote, Serial: "0a", CertNotAfter: t0.Add(365 * 24 * time.Hour)}
}

func TestTrackerStates(t *testing.T) {
	reg := []Registered{{Name: "temp-1", Type: "temperature"}, {Name: "temp-2", Type: "temperature"}, {Name: "door-1", Type: "door"}}
	type step struct {
		online bool
		c      Conn
		at     time.Duration // after t0
	}
	tests := []struct {
		name  string
		steps []step
		thing string
		want  Device
	}{
		{name: "never seen", thing: "door-1",
			want: Device{Thing: "door-1", Type: "door", State: NeverSeen}},
		{name: "connected", thing: "temp-1", steps: []step{{true, conn("temp-1", "10.0.0.5:4000"), 0}},
			want: Device{Thing: "temp-1", Type: "temperature", State: Online, Connected: true, Connections: 1, Since: t0, LastSeen: t0.Add(time.Hour),
				LastRemote: "10.0.0.5:4000", LastClientID: "temp-1", Listener: "lan", CertSerial: "0a", CertNotAfter: t0.Add(365 * 24 * time.Hour)}},
		{name: "disconnected", thing: "temp-1", steps: []step{{true, conn("temp-1", "10.0.0.5:4000"), 0}, {false, conn("temp-1", "10.0.0.5:4000"), time.Minute}},
			want: Device{Thing: "temp-1", Type: "temperature", State: Offline, Since: t0.Add(time.Minute), LastSeen: t0.Add(time.Minute),
				LastRemote: "10.0.0.5:4000", LastClientID: "temp-1", Listener: "lan", CertSerial: "0a", CertNotAfter: t0.Add(365 * 24 * time.Hour)}},
		{name: "takeover: the old connection ends after the new one began", thing: "temp-1", steps: []step{
			{true, conn("temp-1", "10.0.0.5:4000"), 0}, {true, conn("temp-1", "10.0.0.5:4001"), time.Minute}, {false, conn("temp-1", "10.0.0.5:4000"), 2 * time.Minute}},
			want: Device{Thing: "temp-1", Type: "temperature", State: Online, Connected: true, Connections: 1, Since: t0, LastSeen: t0.Add(time.Hour),
				LastRemote: "10.0.0.5:4001", LastClientID: "temp-1", Listener: "lan", CertSerial: "0a", CertNotAfter: t0.Add(365 * 24 * time.Hour)}},
		{name: "an end never begun is ignored", thing: "temp-2", steps: []step{{false, conn("temp-2", "10.0.0.6:4000"), 0}},
			want: Device{Thing: "temp-2", Type: "temperature", State: NeverSeen}},
		{name: "connected but not listed", thing: "guest-9", steps: []step{{true, conn("guest-9", "10.0.0.9:4000"), 0}},
			want: Device{Thing: "guest-9", State: Unlisted, Connected: true, Connections: 1, Since: t0, LastSeen: t0.Add(time.Hour),
				LastRemote: "10.0.0.9:4000", LastClientID: "guest-9", Listener: "lan", CertSerial: "0a", CertNotAfter: t0.Add(365 * 24 * time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &clock{now: t0}
			tr, err := Open("", Options{Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			for _, s := range tt.steps {
				clk.now = t0.Add(s.at)
				if s.online {
					tr.Online(s.c)
				} else {
					tr.Offline(s.c)
				}
			}
			clk.now = t0.Add(time.Hour)
			var got *Device
			for _, d := range tr.Devices(reg) {
				if d.Thing == tt.thing {
					got = &d
				}
			}
			if got == nil {
				t.Fatalf("Devices: got no %s; want %+v", tt.thing, tt.want)
			}
			if *got != tt.want {
				t.Errorf("got  %+v;\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestCountsAndOfflineLonger(t *testing.T) {
	clk := &clock{now: t0}
	tr, _ := Open("", Options{Now: clk.Now})
	defer tr.Close()
	reg := []Registered{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}}
	tr.Online(conn("a", "1:1"))
	tr.Online(conn("b", "1:2"))
	tr.Online(conn("c", "1:3"))
	clk.now = t0.Add(time.Minute)
	tr.Offline(conn("b", "1:2"))
	clk.now = t0.Add(2 * time.Hour)
	tr.Offline(conn("c", "1:3"))
	clk.now = t0.Add(3 * time.Hour)
	devs := tr.Devices(reg)
	counts := Counts(devs)
	want := map[State]int{Online: 1, Offline: 2, NeverSeen: 1, Unlisted: 0}
	for s, n := range want {
		if counts[s] != n {
			t.Errorf("Counts[%s]: got %d; want %d", s, counts[s], n)
		}
	}
	// b offline since t0+1m (2h59m), c since t0+2h (1h), d never seen.
	if got := OfflineLonger(devs, 90*time.Minute, clk.now); got != 2 {
		t.Errorf("OfflineLonger(90m): got %d; want 2 (b and the never seen d)", got)
	}
}

// TestKeptAcrossRestarts: what was seen survives Close and Open; nothing is
// written before a flush (no write per connect).
func TestKeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{now: t0}
	tr, err := Open(dir, Options{Now: clk.Now, FlushEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		tr.Online(conn("temp-1", "10.0.0.5:"+string(rune('0'+i%10))))
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("presence file before any flush: stat err %v; want not written yet", err)
	}
	clk.now = t0.Add(time.Minute)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	clk.now = t0.Add(time.Hour)
	tr2, err := Open(dir, Options{Now: clk.Now, FlushEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	devs := tr2.Devices([]Registered{{Name: "temp-1"}})
	if len(devs) != 1 || devs[0].State != Offline || !devs[0].LastSeen.Equal(t0.Add(time.Minute)) || devs[0].LastRemote != "10.0.0.5:9" {
		t.Errorf("after restart: got %+v; want temp-1 offline, last seen %s from 10.0.0.5:9", devs, t0.Add(time.Minute))
	}
	offline, err := Snapshot(filepath.Join(dir, FileName), []Registered{{Name: "temp-1"}, {Name: "temp-2"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(offline) != 2 || offline[0].State != Offline || offline[1].State != NeverSeen {
		t.Errorf("Snapshot: got %+v; want temp-1 offline, temp-2 never seen", offline)
	}
}

// TestFlushRateLimited: the background flush writes at most once an
// interval, whatever the number of connects.
func TestFlushRateLimited(t *testing.T) {
	dir := t.TempDir()
	tr, err := Open(dir, Options{FlushEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	path := filepath.Join(dir, FileName)
	tr.Online(conn("temp-1", "10.0.0.5:1"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("presence file: got none within 10s; want the background flush to write it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	devs, err := Snapshot(path, []Registered{{Name: "temp-1"}})
	if err != nil || len(devs) != 1 || devs[0].LastRemote != "10.0.0.5:1" {
		t.Errorf("flushed file: got %+v, %v; want temp-1 from 10.0.0.5:1", devs, err)
	}
}

// TestFlushSleepsWhileNothingChanges: the background flush does not wake
// while nothing changed; a change wakes it once, and it writes the file.
func TestFlushSleepsWhileNothingChanges(t *testing.T) {
	const every = 20 * time.Millisecond
	dir := t.TempDir()
	tr, err := Open(dir, Options{FlushEvery: every})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	time.Sleep(20 * every)
	if n := tr.ticks.Load(); n != 0 {
		t.Fatalf("nothing changed: %d wakeups; want 0", n)
	}
	path := filepath.Join(dir, FileName)
	for i := range 3 { // three changes within one interval: one write
		tr.Online(conn("temp-1", fmt.Sprintf("10.0.0.5:%d", i)))
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if i == 1000 {
			t.Fatal("presence file: got none within 10s; want the background flush to write it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(20 * every)
	if n := tr.ticks.Load(); n != 1 {
		t.Fatalf("one burst of changes: %d wakeups; want 1", n)
	}
	devs, err := Snapshot(path, []Registered{{Name: "temp-1"}})
	if err != nil || len(devs) != 1 || devs[0].LastRemote != "10.0.0.5:2" {
		t.Errorf("flushed file: got %+v, %v; want temp-1 from 10.0.0.5:2", devs, err)
	}
}

func TestOpenCorrupt(t *testing.T) {
	tests := []struct{ name, data string }{
		{"not JSON", "{"},
		{"other version", `{"version":9,"things":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Open: got %v; want ErrCorrupt", err)
			}
		})
	}
}

// FuzzLoad: the presence file is read at start; whatever it holds, load
// returns records or an error, never panics.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"version":1,"things":{"temp-1":{"since":"2026-12-01T08:00:00Z","last_seen":"2026-12-01T08:00:00Z","last_remote":"10.0.0.5:1"}}}`))
	f.Add([]byte(`{"version":1,"things":{"a":null}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		things, err := load(path)
		if err == nil {
			_ = devices(things, []Registered{{Name: "temp-1"}}, t0)
		}
	})
}
