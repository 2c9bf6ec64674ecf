package broker

import (
	"context"
	"testing"
	"time"
)

// TestSessionLiveRecord: a connected MQTT 5 session with a Session Expiry
// Interval has its record in the store, marked live, with its
// subscriptions as of each SUBACK / UNSUBACK (read right after the ack: the
// write is waited for); a DISCONNECT setting the expiry to 0 removes it; a
// clean MQTT 3.1.1 session writes nothing.
func TestSessionLiveRecord(t *testing.T) {
	_, kv := openSessionKV(t)
	e := newEnvBefore(t, offlineSite(t), func(b *Broker) {
		if _, _, err := b.RestoreSessions(context.Background(), kv); err != nil {
			t.Fatal(err)
		}
	})
	const id = "off-live"
	record := func() (storedSession, bool) {
		v, err := kv.Get(context.Background(), sessionKey(id))
		if err != nil || v == nil {
			return storedSession{}, false
		}
		rec, err := decodeSession(v)
		if err != nil {
			t.Fatalf("stored record %q: %v", v, err)
		}
		return rec, true
	}
	w := dialWire(t, e.plain)
	w.write(t, connectRaw("MQTT", 5, 0x02, id, props(0x11, 0, 0, 0x0E, 0x10))) // Session Expiry Interval 3600
	if b, err := w.next(5 * time.Second); err != nil || b[0] != 0x20 || b[3] != 0 {
		t.Fatalf("CONNACK % x (%v)", b, err)
	}
	eventually(t, "the session record written after CONNACK", func() bool { _, ok := record(); return ok })

	w.write(t, subscribeRaw(5, "off/live/#", 1))
	if b, err := w.next(5 * time.Second); err != nil || b[0] != 0x90 {
		t.Fatalf("SUBACK % x (%v)", b, err)
	}
	rec, ok := record()
	if !ok || !rec.Live || rec.Interval != 3600 || len(rec.Subs) != 1 || rec.Subs[0].Filter != "off/live/#" || rec.Subs[0].QoS != 1 {
		t.Fatalf("record after SUBACK: %+v (present %v); want live, interval 3600, off/live/# QoS 1", rec, ok)
	}
	w.write(t, unsubscribeRaw(5, "off/live/#"))
	if b, err := w.next(5 * time.Second); err != nil || b[0] != 0xB0 {
		t.Fatalf("UNSUBACK % x (%v)", b, err)
	}
	if rec, ok := record(); !ok || len(rec.Subs) != 0 {
		t.Fatalf("record after UNSUBACK: %+v (present %v); want no subscriptions", rec, ok)
	}
	w.write(t, pkt(0xE0, []byte{0}, props(0x11, 0, 0, 0, 0))) // DISCONNECT, Session Expiry Interval 0
	eventually(t, "the record removed after DISCONNECT with expiry 0", func() bool { _, ok := record(); return !ok })

	c := dialWire(t, e.plain)
	c.write(t, connectV(4, id)) // clean session 1
	if b, err := c.next(5 * time.Second); err != nil || b[3] != 0 {
		t.Fatalf("CONNACK % x (%v)", b, err)
	}
	c.write(t, subscribeRaw(4, "off/live/#", 1))
	if b, err := c.next(5 * time.Second); err != nil || b[0] != 0x90 {
		t.Fatalf("SUBACK % x (%v)", b, err)
	}
	if rec, ok := record(); ok {
		t.Fatalf("a clean session stored %+v", rec)
	}
}
