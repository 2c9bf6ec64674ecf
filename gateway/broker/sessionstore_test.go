package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/store"
)

// TestStoredMsgRoundTrip: a pending message keeps, through its record,
// everything its delivery needs: topic, payload, QoS, RETAIN, DUP, the
// packet identifier it was in flight with, its origin, the absolute end of
// its Message Expiry Interval, and the PUBLISH properties.
func TestStoredMsgRoundTrip(t *testing.T) {
	now := time.Now().Unix()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2, Retain: true, Dup: true},
		TopicName:   "a/b", Payload: []byte{0, 1, 0xff}, PacketID: 0xfffe, Origin: "pub1",
		Created: now - 10, Expiry: now + 50,
		Properties: packets.Properties{
			PayloadFormat: 1, PayloadFormatFlag: true, ContentType: "application/json", ResponseTopic: "r/t",
			CorrelationData: []byte("cd"), SubscriptionIdentifier: []int{3, 7},
			User: []packets.UserProperty{{Key: "a", Val: "2"}, {Key: "a", Val: "3"}},
		},
	}
	got, err := decodeMsg(encodeMsg(&pk))
	if err != nil {
		t.Fatal(err)
	}
	want := pk
	want.Properties.MessageExpiryInterval = 60 // Expiry - Created; WritePacket sends what remains
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}

	plain := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "x", Payload: []byte{}, Created: now}
	if got, err := decodeMsg(encodeMsg(&plain)); err != nil || !reflect.DeepEqual(got, plain) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, plain)
	}

	for _, bad := range []string{`{`, `{"v":2,"t":"x","q":1}`, `{"v":1,"t":"","q":1}`, `{"v":1,"t":"x","q":0}`} {
		if _, err := decodeMsg([]byte(bad)); err == nil {
			t.Errorf("decodeMsg(%s) accepted", bad)
		}
	}
	for _, bad := range []string{`[]`, `{"v":1,"proto":4,"listener":"","expires":5}`, `{"v":1,"proto":9,"listener":"l","expires":5}`, `{"v":1,"proto":4,"listener":"l","expires":0}`} {
		if _, err := decodeSession([]byte(bad)); err == nil {
			t.Errorf("decodeSession(%s) accepted", bad)
		}
	}
}

// TestSessionKeysOrder: a prefix scan of a session's messages returns them
// in delivery order (moved-back messages below seqStart first), and one
// client's prefix never covers another's.
func TestSessionKeysOrder(t *testing.T) {
	seqs := []uint64{seqStart - 2, seqStart - 1, seqStart, seqStart + 1, seqStart + 255, seqStart + 256}
	for i := 1; i < len(seqs); i++ {
		if a, b := msgKey("c", seqs[i-1]), msgKey("c", seqs[i]); a >= b {
			t.Errorf("key of %d >= key of %d", seqs[i-1], seqs[i])
		}
	}
	if strings.HasPrefix(msgKey("ab", 1), msgPrefix("a")) {
		t.Errorf("prefix of client a covers client ab")
	}
	if seq, ok := msgSeq("c", msgKey("c", seqStart+9)); !ok || seq != seqStart+9 {
		t.Errorf("msgSeq = %d, %v", seq, ok)
	}
	if _, ok := msgSeq("c", msgKey("cd", 1)); ok {
		t.Errorf("msgSeq took another client's key")
	}
}

func openSessionKV(t *testing.T) (*store.Queue, *store.KV) {
	t.Helper()
	q, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "queue")})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := q.KV("sessions")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kv.Close()
		if err := q.Close(); err != nil {
			t.Error(err)
		}
	})
	return q, kv
}

// TestSessionRestore: an offline MQTT 5 session with 50 messages (with
// Message Expiry, content type, response topic and user properties) is
// written to the store when its client leaves; a second broker on the same
// store restores it before it starts: the client reconnects with clean
// start false, gets session present, the 50 messages in order with their
// properties and what remains of their expiry, and a message published
// after the restart while it is still away. Delivered and acknowledged
// messages leave the store.
func TestSessionRestore(t *testing.T) {
	const n = 50
	_, kv := openSessionKV(t)
	restore := func(b *Broker) {
		if _, _, err := b.RestoreSessions(context.Background(), kv); err != nil {
			t.Fatal(err)
		}
	}
	e1 := newEnvBefore(t, offlineSite(t), restore)
	conn := append(hostPort(e1.plain), "-V", "mqttv5")
	sub := []string{"-x", "3600", "-i", "off-sub-restore", "-c", "-q", "1", "-t", "off/restore/#"}
	mosq(t, "", "mosquitto_sub", append(append(append([]string{}, conn...), sub...), "-E")...)
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "%d\n", i)
	}
	mosq(t, lines.String(), "mosquitto_pub", append(append([]string{}, conn...), "-i", "off-pub-restore", "-q", "1", "-t", "off/restore/a", "-l",
		"-D", "publish", "message-expiry-interval", "3600", "-D", "publish", "content-type", "text/plain",
		"-D", "publish", "response-topic", "off/reply", "-D", "publish", "user-property", "k", "v")...)
	if got := e1.metrics.SessionQueued.Load(); got != n {
		t.Fatalf("SessionQueued = %d; want %d", got, n)
	}
	e1.b.Close()
	keys, err := kv.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != n+1 {
		t.Fatalf("store holds %d keys; want the session and %d messages", len(keys), n)
	}

	e2 := newEnvBefore(t, offlineSite(t), restore)
	if got := e2.metrics.SessionsRestored.Load(); got != 1 {
		t.Fatalf("SessionsRestored = %d; want 1", got)
	}
	conn2 := append(hostPort(e2.plain), "-V", "mqttv5")
	mosq(t, "late\n", "mosquitto_pub", append(append([]string{}, conn2...), "-i", "off-pub-restore", "-q", "1", "-t", "off/restore/late", "-l")...)
	out := mosq(t, "", "mosquitto_sub", append(append(append([]string{}, conn2...), sub...), "-C", fmt.Sprint(n+1), "-W", "20", "-F", "%t|%p|%C|%R|%P|%E")...)
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != n+1 {
		t.Fatalf("got %d messages; want %d:\n%s", len(got), n+1, out)
	}
	for i, g := range got[:n] {
		f := strings.Split(g, "|")
		if len(f) != 6 || f[0] != "off/restore/a" || f[1] != fmt.Sprint(i) || f[2] != "text/plain" || f[3] != "off/reply" || f[4] != "k:v" {
			t.Fatalf("message %d is %q; want off/restore/a|%d|text/plain|off/reply|k:v|<expiry>", i, g, i)
		}
		var left int
		if _, err := fmt.Sscan(f[5], &left); err != nil || left < 3500 || left > 3600 {
			t.Fatalf("message %d expiry %q; want what remains of 3600", i, f[5])
		}
	}
	if !strings.HasPrefix(got[n], "off/restore/late|late|") {
		t.Fatalf("last message %q; want the one published after the restart", got[n])
	}
	// mosquitto_sub has exited; the broker reads its last PUBACKs and its
	// DISCONNECT (the session is offline again) before it closes, or what
	// was not acknowledged yet is rightly kept.
	eventually(t, "session offline again", func() bool { return e2.metrics.SessionsOffline.Load() == 1 })
	e2.b.Close() // the writer flushes: the acknowledged messages are deleted
	msgs, err := kv.List(context.Background(), sessKeyMsg)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 0 {
		t.Fatalf("store still holds %d messages after they were delivered and acknowledged", len(msgs))
	}
}

// TestSessionRestoreDiscards: a session whose expiry passed while the
// daemon was down, one whose listener is gone, one whose record is
// unreadable, and messages without a session are removed from the store at
// start; the messages of the discarded sessions are counted and audited.
func TestSessionRestoreDiscards(t *testing.T) {
	_, kv := openSessionKV(t)
	ctx := context.Background()
	now := time.Now().Unix()
	rec := func(listener string, expires int64) []byte {
		v, _ := json.Marshal(storedSession{V: sessionFormat, Proto: 4, Listener: listener, Thing: "off-x", Expires: expires, Subs: []storedSub{{Filter: "off/#", QoS: 1}}})
		return v
	}
	msg := encodeMsg(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "off/a", Payload: []byte("x"), Created: now})
	ops := []store.KVOp{
		{Key: sessionKey("expired"), Value: rec("local", now-1)},
		{Key: msgKey("expired", seqStart), Value: msg},
		{Key: msgKey("expired", seqStart+1), Value: msg},
		{Key: sessionKey("nolistener"), Value: rec("gone", now+3600)},
		{Key: msgKey("nolistener", seqStart), Value: msg},
		{Key: sessionKey("garbled"), Value: []byte("{")},
		{Key: msgKey("orphan", seqStart), Value: msg},
		{Key: sessionKey("kept"), Value: rec("local", now+3600)},
		{Key: msgKey("kept", seqStart), Value: msg},
	}
	if err := kv.Write(ctx, ops); err != nil {
		t.Fatal(err)
	}
	var restored, messages int
	e := newEnvBefore(t, offlineSite(t), func(b *Broker) {
		var err error
		if restored, messages, err = b.RestoreSessions(ctx, kv); err != nil {
			t.Fatal(err)
		}
	})
	if restored != 1 || messages != 1 {
		t.Fatalf("restored %d sessions, %d messages; want 1, 1", restored, messages)
	}
	e.b.Close()
	keys, err := kv.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{msgKey("kept", seqStart), sessionKey("kept")}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("store keys %q; want %q", keys, want)
	}
	if got := e.metrics.SessionDropped.Load(); got != 3 {
		t.Errorf("SessionDropped = %d; want 3 (2 expired, 1 listener gone)", got)
	}
	for _, want := range []string{"2 message(s) for offline session: session expired while the daemon was stopped",
		"1 message(s) for offline session: listener gone is gone"} {
		if !auditHas(t, e.audit, want) {
			t.Errorf("audit log has no %q", want)
		}
	}
}

// TestSessionRestoreAfterStop: a persistent MQTT 3.1.1 session whose client
// is connected when the broker stops (SIGTERM's path: Close disconnects it,
// which keeps it offline and writes it) is restored by the next broker on
// the same store: messages published after the restart are held for it and
// delivered, in order, when it comes back with clean session 0.
func TestSessionRestoreAfterStop(t *testing.T) {
	_, kv := openSessionKV(t)
	restore := func(b *Broker) {
		if _, _, err := b.RestoreSessions(context.Background(), kv); err != nil {
			t.Fatal(err)
		}
	}
	e1 := newEnvBefore(t, offlineSite(t), restore)
	sub := []string{"-V", "mqttv311", "-i", "off-sub-stop", "-c", "-q", "1", "-t", "off/stop/#"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewaytest.Need(t, "mosquitto_sub", "mosquitto-clients"), append(hostPort(e1.plain), sub...)...)
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	eventually(t, "mosquitto_sub subscribed", func() bool { return e1.b.subscribed("off/stop/a") })
	e1.b.Close()
	select {
	case <-exited: // disconnected by the stop
	case <-time.After(10 * time.Second):
		t.Fatal("mosquitto_sub still running 10s after the broker closed")
	}
	if keys, err := kv.List(context.Background(), sessionKey("off-sub-stop")); err != nil || len(keys) != 1 {
		t.Fatalf("stored session keys %q, %v; want the session written at the stop", keys, err)
	}

	e2 := newEnvBefore(t, offlineSite(t), restore)
	conn := append(hostPort(e2.plain), "-V", "mqttv311")
	mosq(t, "0\n1\n2\n", "mosquitto_pub", append(append([]string{}, conn...), "-i", "off-pub-stop", "-q", "1", "-t", "off/stop/a", "-l")...)
	if got := e2.metrics.SessionQueued.Load(); got != 3 {
		t.Fatalf("SessionQueued = %d; want 3 held for the restored session", got)
	}
	out := mosq(t, "", "mosquitto_sub", append(hostPort(e2.plain), append(sub, "-C", "3", "-W", "20")...)...)
	if out != "0\n1\n2\n" {
		t.Fatalf("got %q; want 0, 1, 2 in order", out)
	}
}

// gatedStore is a SessionStore whose writes wait while the gate is closed.
type gatedStore struct {
	SessionStore
	mu     sync.Mutex
	gate   chan struct{} // nil: open
	writes atomic.Int64  // writes that reached the store
}

func (g *gatedStore) Write(ctx context.Context, ops []store.KVOp) error {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	err := g.SessionStore.Write(ctx, ops)
	g.writes.Add(1)
	return err
}

func (g *gatedStore) close() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedStore) open() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

// TestSessionPubackWaitsForStore: the PUBACK for a QoS 1 message held for
// an offline session is not sent while the store write of that message is
// blocked, and is sent once the write went through (the same promise as
// the upstream queue).
func TestSessionPubackWaitsForStore(t *testing.T) {
	_, kv := openSessionKV(t)
	gs := &gatedStore{SessionStore: kv}
	e := newEnvBefore(t, offlineSite(t), func(b *Broker) {
		if _, _, err := b.RestoreSessions(context.Background(), gs); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(gs.open) // before the broker's Close (cleanups run last first): its writer must not stay blocked
	conn := append(hostPort(e.plain), "-V", "mqttv5")
	mosq(t, "", "mosquitto_sub", append(append([]string{}, conn...), "-x", "3600", "-i", "off-sub-gate", "-c", "-q", "1", "-t", "off/gate/#", "-E")...)
	eventually(t, "session record written", func() bool { return gs.writes.Load() > 0 })
	gs.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewaytest.Need(t, "mosquitto_pub", "mosquitto-clients"),
		append(append([]string{}, conn...), "-i", "off-pub-gate", "-q", "1", "-t", "off/gate/a", "-m", "held")...)
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	eventually(t, "message queued for the offline session", func() bool { return e.metrics.SessionQueued.Load() == 1 })
	select {
	case err := <-exited:
		t.Fatalf("mosquitto_pub got its PUBACK (exit %v) while the store write was blocked", err)
	case <-time.After(500 * time.Millisecond):
	}
	gs.open()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("mosquitto_pub: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no PUBACK within 20s of the store write going through")
	}
	keys, err := kv.List(context.Background(), msgPrefix("off-sub-gate"))
	if err != nil || len(keys) != 1 {
		t.Fatalf("stored messages %q, %v; want the one held", keys, err)
	}
}

// publishV3 reads a 3.1.1 QoS 1 PUBLISH's bytes: DUP, packet identifier,
// topic and payload.
func publishV3(t *testing.T, b []byte) (dup bool, id uint16, topic, payload string) {
	t.Helper()
	if len(b) < 2 || b[0]&0xf0 != 0x30 || b[0]&0x06 != 0x02 {
		t.Fatalf("got % x; want a QoS 1 PUBLISH", b)
	}
	hdr := 2
	for b[hdr-1]&0x80 != 0 {
		hdr++
	}
	body := b[hdr:]
	n := int(body[0])<<8 | int(body[1])
	topic = string(body[2 : 2+n])
	id = uint16(body[2+n])<<8 | uint16(body[3+n])
	return b[0]&0x08 != 0, id, topic, string(body[4+n:])
}

// TestSessionRestoreInFlight: messages written to a resumed client that
// leaves without acknowledging them go back to the front of its outbox
// (and to the store) with DUP and their packet identifiers [MQTT-4.4.0-1];
// when the client comes back (after a restart, or to the same broker
// without a store) it gets them again, in order, as DUP with the same
// identifiers, and its acknowledgements empty the store.
func TestSessionRestoreInFlight(t *testing.T) {
	for _, restart := range []bool{true, false} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) { sessionInFlight(t, restart) })
	}
}

func sessionInFlight(t *testing.T, restart bool) {
	_, kv := openSessionKV(t)
	restore := func(b *Broker) {
		if _, _, err := b.RestoreSessions(context.Background(), kv); err != nil {
			t.Fatal(err)
		}
	}
	if !restart {
		restore = nil // memory only
	}
	connect := func(addr string) (*wireConn, bool) {
		w := dialWire(t, addr)
		pk := connectPacket(4, "off-sub-dup", 30)
		pk.Connect.Clean = false
		w.send(t, pk)
		b, err := w.next(5 * time.Second)
		if err != nil || len(b) != 4 || b[0] != 0x20 || b[3] != 0 {
			t.Fatalf("CONNACK % x, %v; want success", b, err)
		}
		return w, b[2]&1 == 1
	}
	e1 := newEnvBefore(t, offlineSite(t), restore)
	w, _ := connect(e1.plain)
	w.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "off/dup/#", Qos: 1}}})
	if b, err := w.next(5 * time.Second); err != nil || len(b) < 2 || b[0] != 0x90 {
		t.Fatalf("SUBACK % x, %v", b, err)
	}
	w.conn.Close() // gone without DISCONNECT: the session stays
	eventually(t, "session offline", func() bool { return e1.metrics.SessionsOffline.Load() == 1 })
	mosq(t, "0\n1\n2\n", "mosquitto_pub", append(hostPort(e1.plain), "-V", "mqttv311", "-i", "off-pub-dup", "-q", "1", "-t", "off/dup/a", "-l")...)

	w, present := connect(e1.plain)
	if !present {
		t.Fatal("session present 0 on the first return; want 1")
	}
	var ids []uint16
	for i := range 3 {
		b, err := w.next(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		dup, id, _, payload := publishV3(t, b)
		if dup || payload != fmt.Sprint(i) {
			t.Fatalf("message %d: dup %v payload %q; want a first send of %d", i, dup, payload, i)
		}
		ids = append(ids, id)
	}
	w.conn.Close() // none acknowledged
	eventually(t, "session offline again", func() bool { return e1.metrics.SessionsOffline.Load() == 1 })
	e2 := e1
	if restart {
		e1.b.Close()
		e2 = newEnvBefore(t, offlineSite(t), restore)
	}
	w, present = connect(e2.plain)
	if !present {
		t.Fatal("session present 0 on the second return; want 1")
	}
	for i := range 3 {
		b, err := w.next(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d sent again: %v", i, err)
		}
		dup, id, topic, payload := publishV3(t, b)
		if !dup || id != ids[i] || topic != "off/dup/a" || payload != fmt.Sprint(i) {
			t.Fatalf("message %d sent again: dup %v id %d %s %q; want dup true id %d off/dup/a %q", i, dup, id, topic, payload, ids[i], fmt.Sprint(i))
		}
		w.write(t, []byte{0x40, 0x02, byte(id >> 8), byte(id)})
	}
	w.conn.Close() // after the PUBACKs, which the broker reads first
	eventually(t, "session offline after the acknowledgements", func() bool { return e2.metrics.SessionsOffline.Load() == 1 })
	e2.b.Close()
	if msgs, err := kv.List(context.Background(), sessKeyMsg); err != nil || len(msgs) != 0 {
		t.Fatalf("stored messages %q, %v; want none once acknowledged", msgs, err)
	}
}

// fullStore refuses every write that sets a value, as store.KV does below
// the disk's free-space reserve, and records the writes that went through.
type fullStore struct {
	SessionStore
	mu      sync.Mutex
	written [][]store.KVOp
}

func (f *fullStore) Write(_ context.Context, ops []store.KVOp) error {
	for _, o := range ops {
		if o.Value != nil {
			return fmt.Errorf("writing %d keys: %w", len(ops), store.ErrFull)
		}
	}
	f.mu.Lock()
	f.written = append(f.written, ops)
	f.mu.Unlock()
	return nil
}

// TestSessionWriterFull: a batch the store refuses (disk below its reserve)
// is counted, and its deletes are written alone, so delivered messages do
// not come back after a restart.
func TestSessionWriterFull(t *testing.T) {
	b := &Broker{metrics: new(Metrics), log: slog.New(slog.DiscardHandler)}
	fs := &fullStore{}
	w := newSessionWriter(b, fs)
	defer w.close()
	w.submit(store.KVOp{Key: msgKey("c", seqStart+1), Value: []byte("{}")}, store.KVOp{Key: msgKey("c", seqStart)})
	w.wait(w.n.Load())
	if got := b.metrics.SessionStoreFailures.Load(); got != 1 {
		t.Errorf("SessionStoreFailures = %d; want 1", got)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if want := [][]store.KVOp{{{Key: msgKey("c", seqStart)}}}; !reflect.DeepEqual(fs.written, want) {
		t.Errorf("written %q; want the delete alone", fs.written)
	}
}
