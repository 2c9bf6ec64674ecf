package observe

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/broker"
)

// devicesBroker is a local broker with n connected devices, named as
// connectKey names them; Devices blocks while block is set (a broker busy
// listing thousands of clients) and counts its calls.
type devicesBroker struct {
	devs    []broker.ConnectedDevice
	calls   atomic.Int64
	block   chan struct{} // nil: never blocks
	entered chan struct{} // closed at the first blocked call
	once    sync.Once
}

func newDevicesBroker(n int) *devicesBroker {
	b := &devicesBroker{}
	for i := range n {
		b.devs = append(b.devs, broker.ConnectedDevice{ClientID: fmt.Sprintf("dev-%05d", i), Remote: "10.0.0.1:1"})
	}
	return b
}

func (b *devicesBroker) Metrics() *broker.Metrics { return nil }
func (b *devicesBroker) Clients() int             { return len(b.devs) }
func (b *devicesBroker) Listeners() int           { return 1 }
func (b *devicesBroker) Addr(string) net.Addr     { return nil }
func (b *devicesBroker) Devices() []broker.ConnectedDevice {
	b.calls.Add(1)
	if b.block != nil {
		b.once.Do(func() { close(b.entered) })
		<-b.block
	}
	return append([]broker.ConnectedDevice(nil), b.devs...)
}

func connectEvent(d broker.ConnectedDevice) audit.Event {
	return audit.Event{Event: audit.EventConnect, ClientID: d.ClientID, Remote: d.Remote}
}

// TestRecordDoesNotWaitForPrune: the connect that prunes the connect-time
// map asks the broker for its clients; the other recorders (denials,
// refused connects from the TLS and CONNECT paths) do not wait for that.
// Before, Record held the observer's lock across Broker.Devices, so one
// slow listing stalled every audit event of the gateway behind it.
func TestRecordDoesNotWaitForPrune(t *testing.T) {
	b := newDevicesBroker(10)
	b.block, b.entered = make(chan struct{}), make(chan struct{})
	o := New(nil, nil)
	o.broker = b
	for i := range 4*maxSince + 1 { // gone clients: the next connect prunes
		o.since[fmt.Sprintf("gone-%d\x00r", i)] = sinceEntry{at: time.Now()}
	}
	pruned := make(chan struct{})
	go func() { defer close(pruned); o.Record(connectEvent(b.devs[0])) }()
	<-b.entered
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		o.Record(audit.Event{Event: audit.EventDeny, ClientID: "dev-00001", Resource: "topic/x"})
		o.Record(audit.Event{Event: audit.EventConnectRefused, Cause: audit.CauseTLS})
		o.Record(connectEvent(b.devs[1]))
	}()
	select {
	case <-recorded:
	case <-time.After(10 * time.Second): // a deadlock bound, not a timing claim
		close(b.block)
		<-pruned
		t.Fatal("Record waited for the broker's client list (the prune held the observer's lock)")
	}
	close(b.block)
	<-pruned
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.since) != 2 {
		t.Errorf("connect times after the prune: %d; want 2 (the two connected devices recorded)", len(o.since))
	}
	if _, ok := o.since[b.devs[1].ClientID+"\x00"+b.devs[1].Remote]; !ok {
		t.Error("the connect recorded during the prune was pruned")
	}
}

// TestRecordPrunesRarelyWithManyClients: with more connected clients than
// the prune threshold, a connect does not list the broker's clients every
// time (before: every connect past 4096 live clients did, under the lock).
func TestRecordPrunesRarelyWithManyClients(t *testing.T) {
	const live = 5 * maxSince
	b := newDevicesBroker(live)
	o := New(nil, nil)
	o.broker = b
	for _, d := range b.devs {
		o.Record(connectEvent(d))
	}
	for _, d := range b.devs[:1000] { // reconnects
		o.Record(connectEvent(d))
	}
	if n := b.calls.Load(); n > 3 {
		t.Errorf("%d client listings for %d connects of %d clients; want at most 3", n, live+1000, live)
	}
	if len(o.since) != live {
		t.Errorf("connect times: %d; want %d", len(o.since), live)
	}
}

// BenchmarkRecordConnect measures Record of connects on a gateway with
// clients connected (the sub-benchmark's name): parallel recorders, as
// the broker's connection goroutines call it.
func BenchmarkRecordConnect(b *testing.B) {
	for _, live := range []int{1000, 5000} {
		b.Run(fmt.Sprint(live), func(b *testing.B) {
			br := newDevicesBroker(live)
			o := New(nil, nil)
			o.broker = br
			for _, d := range br.devs {
				o.Record(connectEvent(d))
			}
			br.calls.Store(0)
			b.ResetTimer()
			var i atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					o.Record(connectEvent(br.devs[int(i.Add(1))%live]))
				}
			})
			b.ReportMetric(float64(br.calls.Load())/float64(b.N), "listings/op")
		})
	}
}
