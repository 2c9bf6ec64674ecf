package broker

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// TestFairAdmission: with 1,000 idle connections from one address
// (127.0.0.2, reopened as they are closed), 10 sensors from another
// (127.0.0.1) connect over mTLS and publish QoS 1; every refusal of the idle
// host is counted and summarised in the audit log. The per-connect bound is
// only a hang guard; the times are logged.
func TestFairAdmission(t *testing.T) {
	e := newEnv(t, nil)
	hostile := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var idle []net.Conn
	defer func() {
		close(stop)
		wg.Wait()
		for _, c := range idle {
			c.Close()
		}
	}()
	open := func() {
		c, err := hostile.Dial("tcp", e.addr)
		if err != nil {
			return
		}
		mu.Lock()
		idle = append(idle, c)
		mu.Unlock()
	}
	for range 1000 {
		open()
	}
	if len(idle) < 1000 {
		t.Fatalf("opened %d idle connections; want 1000", len(idle))
	}
	// Keep reopening, as a hostile host would, while the sensors connect.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			open()
			time.Sleep(time.Millisecond)
		}
	}()

	for i := range 10 {
		thing := fmt.Sprintf("load-%02d", i)
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			c, err := e.connectV5(t, e.pki.Issue(t, thing), thing)
			if err != nil {
				done <- err
				return
			}
			if c.Ack.ReasonCode != 0 {
				done <- fmt.Errorf("CONNACK 0x%02x", c.Ack.ReasonCode)
				return
			}
			rc, err := c.Publish(t, "sensors/"+thing+"/t", 1, false, "21.5")
			if err == nil && rc != 0 {
				err = fmt.Errorf("PUBACK 0x%02x", rc)
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("sensor %s: %v; want connected and published", thing, err)
			}
		case <-time.After(15 * time.Second): // hang guard only
			t.Fatalf("sensor %s: no connect and publish within 15 s", thing)
		}
		t.Logf("sensor %s connected and published in %v", thing, time.Since(start))
	}
	if got := e.metrics.PendingRejected.Load(); got < 900 {
		t.Errorf("PendingRejected = %d; want >= 900 (each refusal of the idle host counted)", got)
	}
	e.b.byID["lan"].adm.Flush()
	if !auditHas(t, e.audit, `"event":"admission_refused","listener":"lan","remote":"127.0.0.2"`) {
		t.Errorf("audit log has no admission_refused summary for 127.0.0.2")
	}
}

// TestAdmissionEviction: when unproven addresses hold the whole budget, a
// connection from an address that completed a handshake before closes the
// oldest pending connection of the unproven address holding the most.
func TestAdmissionEviction(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.MaxPendingHandshakes = 4 }) // unproven share 2
	c, err := e.connectV5(t, e.pki.Issue(t, "sensor-a"), "sensor-a")
	if err != nil || c.Ack.ReasonCode != 0 {
		t.Fatalf("first connect (proves 127.0.0.1): %v", err)
	}
	for _, ip := range []net.IP{net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 3)} {
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
		for range 2 {
			c, err := d.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
	}
	for deadline := time.Now().Add(10 * time.Second); e.metrics.PendingHandshakes.Load() < 4; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("PendingHandshakes = %d; want 4", e.metrics.PendingHandshakes.Load())
		}
	}
	c2, err := e.connectV5(t, e.pki.Issue(t, "sensor-b"), "sensor-b")
	if err != nil || c2.Ack.ReasonCode != 0 {
		t.Fatalf("proven address with the budget full: %v; want connected", err)
	}
	if got := e.metrics.AdmissionEvicted.Load(); got != 1 {
		t.Errorf("AdmissionEvicted = %d; want 1", got)
	}
}
