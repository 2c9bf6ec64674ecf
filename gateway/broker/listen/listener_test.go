package listen

import (
	"net"
	"testing"
	"time"
)

type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (d *deadlineConn) SetDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

// TestGuardConnCoarseDeadline: mochi's per-packet keep-alive deadline
// reaches the connection only when it moves by more than the slack; the
// first one, an earlier one and "no deadline" always do.
func TestGuardConnCoarseDeadline(t *testing.T) {
	d := &deadlineConn{}
	c := &Conn{Conn: d}
	const span = 15 * time.Second // keepalive 10 s
	start := time.Now().Add(span)
	// 10,000 packets, each deadline 100 us later than the last: 1 s in all.
	for i := range 10000 {
		if err := c.SetDeadline(start.Add(time.Duration(i) * 100 * time.Microsecond)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(d.set); n < 1 || n > 3 {
		t.Fatalf("%d deadlines passed on for 1 s of packets with %v of slack; want 1 to 3", n, span/16)
	}
	if !d.set[0].Equal(start) {
		t.Fatalf("first deadline passed on %v; want %v", d.set[0], start)
	}
	last := d.set[len(d.set)-1]
	// The slack is 1/16 of the deadline's distance (here about 16 s), at
	// most a second.
	if late := start.Add(time.Second).Sub(last); late > time.Second {
		t.Fatalf("the connection's deadline lags mochi's by %v; want at most 1s", late)
	}

	n := len(d.set)
	earlier := start.Add(-time.Second)
	c.SetDeadline(earlier)
	c.SetDeadline(time.Time{})
	c.SetDeadline(earlier) // after "none", passed on again
	if got := d.set[n:]; len(got) != 3 || !got[0].Equal(earlier) || !got[1].IsZero() || !got[2].Equal(earlier) {
		t.Fatalf("earlier / zero / earlier deadlines passed on as %v; want all three", got)
	}

	// A short keep-alive (1 s): deadlines 100 ms apart all go through.
	d2 := &deadlineConn{}
	c2 := &Conn{Conn: d2}
	base := time.Now().Add(time.Second)
	for i := range 5 {
		c2.SetDeadline(base.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	if len(d2.set) != 5 {
		t.Fatalf("%d of 5 deadlines 100 ms apart passed on with a 1 s keep-alive; want all", len(d2.set))
	}
}
