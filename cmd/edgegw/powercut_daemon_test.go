package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/store/loopdisk"
)

// TestPowerCutDaemon is phase 2 of the power-cut test (make powercut; phase
// 1, the queue alone, is store's TestPowerCut): the whole state dir of a
// real `edgegw run` (its queue, key files and sessions) lives on ext4 in an
// image file on a loop device with direct I/O (store/loopdisk). Sensors
// (paho.mqtt.golang, MQTT 3.1.1, QoS 1) publish through it while its bridge
// forwards to a Debian Mosquitto upstream (A). At random moments the daemon
// is stopped (SIGSTOP), the device let go still and the image copied: the
// disk a power cut leaves. With the daemon still stopped, the copy is
// mounted (ext4 replays its journal) and a fresh `edgegw run` started on it,
// its bridge pointed at a second, fresh Mosquitto (B). Every message a
// sensor got a PUBACK for before the stop must reach an upstream: A (what
// the stopped daemon had already forwarded) or B (what the copy held). A is
// down for every other copy and may hold what it acknowledged to the daemon
// but had not delivered yet (its persistence keeps it): what B did not get
// is checked at A at the end, with A up. Then the copy's daemon and B stop,
// and the first daemon goes on.
//
// EDGEGW_POWERCUT_DAEMON_COPIES sets the number of copies (make powercut:
// 40); go test takes 20. It needs root and a free loop device and skips
// saying so without them.
func TestPowerCutDaemon(t *testing.T) {
	loopdisk.Setup(t)
	copies := 20
	if v := os.Getenv("EDGEGW_POWERCUT_DAEMON_COPIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("EDGEGW_POWERCUT_DAEMON_COPIES=%q: want a positive number of copies", v)
		}
		copies = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("EDGEGW_CRASH_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 17))
	t.Logf("seed %d (EDGEGW_CRASH_SEED), %d copies", seed, copies)

	up := gatewaytest.NewUpstream(t, cmdUpstream)
	const prefix = "pc"
	cloudA := new(benchSub)
	cloudA.reset(prefix)
	cloudA.subscribe(t, up.Addr, up.PKI.ClientTLS(up.Cloud), "cloud-powercut", "sites/#")

	work := t.TempDir()
	img, mnt, dev := loopdisk.NewImage(t, work, "512M")
	// The gateway's key is installed before the daemon's first start and
	// synced, as a provisioned key is: a file written without fdatasync is
	// not on a disk that loses power right after (ext4 delayed allocation).
	state := filepath.Join(mnt, "state")
	keyPEM, err := os.ReadFile(up.Gateway.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	writeSynced(t, filepath.Join(state, "gateway.key"), keyPEM)
	g := newBridgeGW(t, up, gwOptions{stateDir: state, routes: `
    - {name: telemetry, topic: "sensors/#", direction: out, qos: 1, remote_prefix: "sites/plant-7/"}`})
	conf, err := os.ReadFile(g.conf)
	if err != nil {
		t.Fatal(err)
	}

	sensors := &pcSensors{acked: map[string]bool{}, stop: make(chan struct{})}
	for i := range 4 {
		sensors.start(t, g, fmt.Sprintf("sensor-%02d", i), prefix)
	}
	defer func() {
		if g.cmd != nil { // a stopped daemon would hold the sensors' windows
			_ = syscall.Kill(g.cmd.Process.Pid, syscall.SIGCONT)
		}
		sensors.halt()
	}()

	var tot struct{ expected, fromCopy, fromA int }
	type laterMsg struct {
		id   string
		copy int
	}
	var laterA []laterMsg // not from the copy: must reach A once it is up
	start := time.Now()
	upDown := false
	for i := range copies {
		// Every other copy with the upstream down: the queue holds a backlog
		// the copy must deliver; in between it drains (acks and deletes).
		if down := i%2 == 0; down != upDown {
			if down {
				up.Stop()
			} else {
				up.Start()
			}
			upDown = down
		}
		time.Sleep(time.Duration(100+rng.IntN(900)) * time.Millisecond)
		loopdisk.Stop(t, g.cmd.Process.Pid)
		copyImg := filepath.Join(work, "copy.img")
		loopdisk.CopyStill(t, dev, img, copyImg)
		// Every PUBACK a sensor reads from now until SIGCONT was sent before
		// the stop: the wait for A below lets them arrive too.
		seenA := quiet(cloudA)
		acked := sensors.snapshot()
		var want []string
		for id := range acked {
			if !seenA[id] {
				want = append(want, id)
			}
		}
		if len(acked) == 0 {
			t.Fatalf("copy %d: no sensor got a PUBACK yet; edgegw log:\n%s", i, gatewaytest.LastBytes([]byte(g.log.String()), 4096))
		}
		got := runOnCopy(t, g, string(conf), mnt, copyImg, up, prefix, want)
		// What B did not get must reach A. A stopped for this copy may have
		// acknowledged messages to the daemon (which then deleted them)
		// without having delivered them to its subscriber yet: A keeps them
		// (persistence) and delivers them once it is started again, so they
		// are checked at the end, with A up.
		for _, id := range want {
			if !got[id] {
				laterA = append(laterA, laterMsg{id, i})
			}
		}
		tot.expected += len(acked)
		tot.fromCopy += len(want)
		tot.fromA += len(acked) - len(want)
		if err := syscall.Kill(g.cmd.Process.Pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	if upDown {
		up.Start()
	}
	if len(laterA) > 0 {
		ids := make([]string, len(laterA))
		for k, m := range laterA {
			ids[k] = m.id
		}
		seen, _ := waitFor(cloudA, ids, 15*time.Second)
		var lost []string
		for _, m := range laterA {
			if !seen[m.id] {
				lost = append(lost, fmt.Sprintf("%s (copy %d)", m.id, m.copy))
			}
		}
		if len(lost) > 0 {
			slices.Sort(lost)
			t.Fatalf("%d PUBACKed messages neither delivered from their copy (B) nor ever at the upstream (A), e.g. %v", len(lost), lost[:min(10, len(lost))])
		}
		tot.fromCopy -= len(laterA)
		tot.fromA += len(laterA)
		t.Logf("%d PUBACKed messages a copy did not hold reached A once it was up again (acknowledged by A as it went down)", len(laterA))
	}
	if tot.fromCopy == 0 {
		t.Errorf("no copy held a PUBACKed message the upstream did not have: the copies checked nothing (the upstream was down for every other copy)")
	}
	if errs := sensors.errors(); errs != "" {
		t.Logf("sensor reconnects (expected while the daemon is stopped): %s", errs)
	}
	t.Logf("%d daemon power-cut copies in %v: 0 failures; %d PUBACKed messages checked (%d already at the upstream, %d delivered from the copy)",
		copies, time.Since(start).Round(time.Second), tot.expected, tot.fromA, tot.fromCopy)
}

// waitFor waits until s has seen every message of want, giving up after
// stall without a new one; it returns what s saw and how many of want are
// missing.
func waitFor(s *benchSub, want []string, stall time.Duration) (map[string]bool, int) {
	prev, at := -1, time.Now()
	for {
		s.mu.Lock()
		missing := 0
		for _, id := range want {
			if !s.seen[id] {
				missing++
			}
		}
		n := len(s.seen)
		s.mu.Unlock()
		if missing == 0 || time.Since(at) > stall {
			s.mu.Lock()
			defer s.mu.Unlock()
			return maps.Clone(s.seen), missing
		}
		if n != prev {
			prev, at = n, time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeSynced writes a file and its directory through to the disk.
func writeSynced(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, dir := range []string{filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
		d, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			t.Fatal(err)
		}
		d.Close()
	}
}

// quiet waits until s has seen nothing new for 300 ms (at most 10 s) and
// returns what it has seen ("<sensor> <seq>").
func quiet(s *benchSub) map[string]bool {
	prev := -1
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		n, _ := s.count()
		if n == prev {
			break
		}
		prev = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.seen)
}

// runOnCopy mounts the image copy, starts a fresh Mosquitto (B, the same
// PKI and ACL as up) and a fresh `edgegw run` on the copy's state dir
// bridged to B, and returns what B's subscriber got once every message of
// want arrived (or nothing new came for 15 s). Everything it started is
// stopped and unmounted before it returns.
func runOnCopy(t *testing.T, g *bridgeGW, conf, mnt, copyImg string, up *gatewaytest.Upstream, prefix string, want []string) map[string]bool {
	t.Helper()
	copyMnt := filepath.Join(filepath.Dir(copyImg), "copy-mnt")
	if err := os.MkdirAll(copyMnt, 0o755); err != nil {
		t.Fatal(err)
	}
	unmount, err := loopdisk.MountCopy(copyImg, copyMnt)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unmount(); err != nil {
			t.Error(err)
		}
	}()
	acl := filepath.Join(t.TempDir(), "acl")
	gatewaytest.WriteFile(t, acl, fmt.Appendf(nil, "user %s\ntopic readwrite sites/plant-7/#\nuser %s\ntopic readwrite sites/#\n", gatewaytest.GatewayCN, gatewaytest.CloudCN), 0o600)
	b := gatewaytest.StartMosquitto(t, gatewaytest.MosquittoConfig{PKI: up.PKI, ClientCerts: true, TLSVersion: "tlsv1.2", ACLFile: acl, MaxQueued: 10000000, MaxInflight: 1000})
	defer b.Stop()
	cloudB := new(benchSub)
	cloudB.reset(prefix)
	ctx, cancel := context.WithCancel(context.Background())
	subDone := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		subDone <- cloudB.session(ctx, b.Addr, up.PKI.ClientTLS(up.Cloud), "cloud-copy", "sites/#", func() { close(ready) })
	}()
	defer func() { cancel(); <-subDone }()
	select {
	case <-ready:
	case err := <-subDone:
		t.Fatalf("subscribing on B: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("subscriber on B not subscribed within 15s")
	}

	c := &bridgeGW{t: t, bin: g.bin, dir: t.TempDir(), site: g.site, up: up, log: new(gatewaytest.Buffer)}
	c.addr = gatewaytest.FreeAddr(t)
	c.conf = filepath.Join(c.dir, "edgegw.yaml")
	cc := strings.NewReplacer(mnt+"/", copyMnt+"/", g.dir+"/", c.dir+"/", up.Addr, b.Addr, g.addr, c.addr).Replace(conf)
	gatewaytest.WriteFile(t, c.conf, []byte(cc), 0o644)
	gatewaytest.WriteSiteFiles(t, c.dir, bridgeRegistry, map[string]string{"sensor": bridgeSensorPolicy, "light": bridgeLightPolicy})
	c.start()
	defer c.stop()
	got, missing := waitFor(cloudB, want, 15*time.Second)
	if missing > 0 {
		t.Logf("edgegw on the copy (log, last 4 KiB):\n%s", gatewaytest.LastBytes([]byte(c.log.String()), 4096))
	}
	return got
}

// pcSensors are paho.mqtt.golang MQTT 3.1.1 sensors publishing QoS 1
// ("<prefix> <sensor> <seq> 0") through the daemon, each with up to 10 in
// flight, recording what got a PUBACK. A sensor whose connection fails
// (the daemon stopped too long) connects again and goes on with new
// sequence numbers.
type pcSensors struct {
	mu    sync.Mutex
	acked map[string]bool // "<sensor> <seq>"
	errs  []string
	stop  chan struct{}
	wg    sync.WaitGroup
}

func (s *pcSensors) start(t *testing.T, g *bridgeGW, sensor, prefix string) {
	tc := g.site.ClientTLS(g.site.Issue(t, sensor))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		seq := 0
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			o := mqtt.NewClientOptions().AddBroker("ssl://" + g.addr).SetClientID(sensor).SetTLSConfig(tc).
				SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
				SetKeepAlive(60 * time.Second).SetConnectTimeout(10 * time.Second).SetWriteTimeout(30 * time.Second)
			c := mqtt.NewClient(o)
			if tok := c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				s.fail(fmt.Sprintf("%s connect: %v", sensor, tok.Error()))
				time.Sleep(100 * time.Millisecond)
				continue
			}
			seq = s.publish(c, sensor, prefix, seq)
			c.Disconnect(100)
		}
	}()
}

// publish sends until stop or an error, 10 in flight, and returns the next
// sequence number.
func (s *pcSensors) publish(c mqtt.Client, sensor, prefix string, seq int) int {
	type inflight struct {
		id  string
		tok mqtt.Token
	}
	window := make(chan inflight, 9)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range window {
			if !f.tok.WaitTimeout(2*time.Minute) || f.tok.Error() != nil {
				continue // not acknowledged: not expected anywhere
			}
			s.mu.Lock()
			s.acked[f.id] = true
			s.mu.Unlock()
		}
	}()
	defer func() { close(window); <-done }()
	for {
		select {
		case <-s.stop:
			return seq
		default:
		}
		if !c.IsConnectionOpen() {
			s.fail(sensor + ": connection lost")
			return seq
		}
		id := fmt.Sprintf("%s %d", sensor, seq)
		seq++
		window <- inflight{id, c.Publish("sensors/"+sensor+"/t", 1, false, []byte(prefix+" "+id+" 0"))}
	}
}

func (s *pcSensors) fail(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 10 {
		s.errs = append(s.errs, why)
	}
}

func (s *pcSensors) errors() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.errs, "; ")
}

func (s *pcSensors) snapshot() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.acked)
}

func (s *pcSensors) halt() {
	close(s.stop)
	s.wg.Wait()
}
