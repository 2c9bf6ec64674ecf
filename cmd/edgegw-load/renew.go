package main

// Renewal under load: every device renews its certificate over MQTT (the gateway's
// enrolment service, AWS IoT's CreateCertificateFromCsr) at its own moment within a window
// while the whole fleet keeps publishing QoS 1: a new key and CSR made on the device,
// create-from-csr on its live session, then a clean DISCONNECT and a new session with the new
// certificate. The ledger must show nothing lost, and every old certificate must end on the
// site CRL (reason superseded) and as revoked in issued.json, by the gateway's sweep after its
// successor connected.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/pki"
)

// Renewer plans and counts the fleet's renewals (Fleet.Renew). The window opens with Open,
// once the fleet is up; each device starts at its own offset within it.
type Renewer struct {
	Window   time.Duration // renewals start uniformly spread over it
	Timeout  time.Duration // for one response
	Attempts int           // per device
	retryGap time.Duration // between attempts of one device

	opened  chan struct{} // closed by Open
	started atomic.Int64
	done    atomic.Int64
	gaveUp  atomic.Int64
	mu      sync.Mutex
	start   time.Time
	fails   map[string]int  // by reason, every failed attempt
	times   []time.Duration // key made -> new session up
	first   time.Time       // the first attempt began
	last    time.Time       // the last new session came up
	devs    []*devRenewal   // in fleet order
}

// devRenewal is one device's renewal. Its fields are used by the device's goroutine only,
// except resp (its session's reader) and newSN and finished (also read under Renewer.mu).
type devRenewal struct {
	name     string
	offset   time.Duration // its moment in the window
	retryAt  time.Time     // after a failed attempt
	attempts int
	oldTLS   *tls.Config
	old      *big.Int // serial of the certificate it starts with
	resp     chan Message
	began    time.Time // the current attempt's start
	pending  bool      // new certificate received, its session not up yet
	newSN    *big.Int  // the new certificate's serial (written under Renewer.mu)
	finished bool      // written under Renewer.mu
}

// NewRenewer plans renewals spread over window.
func NewRenewer(window, timeout time.Duration) *Renewer {
	return &Renewer{Window: window, Timeout: timeout, Attempts: 3, retryGap: 2 * time.Second,
		opened: make(chan struct{}), fails: map[string]int{}}
}

// Open opens the window at now.
func (r *Renewer) Open(now time.Time) {
	r.mu.Lock()
	r.start = now
	r.mu.Unlock()
	close(r.opened)
}

// plan gives device d (whose client configuration is tc) its moment in the window.
func (r *Renewer) plan(d Device, tc *tls.Config) (*devRenewal, error) {
	leaf, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certificate of %s: %w", d.Name, err)
	}
	dr := &devRenewal{name: d.Name, oldTLS: tc, old: leaf.SerialNumber, resp: make(chan Message, 4)}
	if r.Window > 0 {
		dr.offset = time.Duration(mrand.Int64N(int64(r.Window)))
	}
	r.mu.Lock()
	r.devs = append(r.devs, dr)
	r.mu.Unlock()
	return dr, nil
}

// settled: every device renewed or gave up.
func (r *Renewer) settled() bool {
	r.mu.Lock()
	n := len(r.devs)
	r.mu.Unlock()
	return int(r.done.Load()+r.gaveUp.Load()) >= n
}

// onMessage takes the enrolment responses of the device's session; false for anything else.
func (dr *devRenewal) onMessage(m Message) bool {
	if !strings.HasPrefix(m.Topic, enrol.TopicCreateFromCSR+"/") {
		return false
	}
	select {
	case dr.resp <- m:
	default: // a response nobody waits for any more
	}
	return true
}

// next is when the device's next attempt is due; false before the window opened.
func (dr *devRenewal) next(r *Renewer) (time.Time, bool) {
	r.mu.Lock()
	start := r.start
	r.mu.Unlock()
	if start.IsZero() {
		return time.Time{}, false
	}
	if !dr.retryAt.IsZero() {
		return dr.retryAt, true
	}
	return start.Add(dr.offset), true
}

// timer is closed when the device's next attempt may be due (check with next); nil when it
// renewed or gave up.
func (dr *devRenewal) timer(r *Renewer) <-chan struct{} {
	if dr.pending || dr.newSN != nil || dr.attempts >= r.Attempts {
		return nil
	}
	at, ok := dr.next(r)
	if !ok {
		return r.opened
	}
	ch := make(chan struct{})
	time.AfterFunc(time.Until(at), func() { close(ch) })
	return ch
}

// due reports whether the attempt timer announced is due now.
func (dr *devRenewal) due(r *Renewer) bool {
	at, ok := dr.next(r)
	return ok && !time.Now().Before(at)
}

// connected is called when the device has a new session: with the new certificate, the
// renewal is complete.
func (dr *devRenewal) connected(r *Renewer) {
	if !dr.pending {
		return
	}
	dr.pending = false
	now := time.Now()
	r.mu.Lock()
	dr.finished = true
	r.times = append(r.times, now.Sub(dr.began))
	r.last = now
	r.mu.Unlock()
	r.done.Add(1)
}

func (r *Renewer) fail(dr *devRenewal, reason string) {
	r.mu.Lock()
	r.fails[reason]++
	r.mu.Unlock()
	dr.retryAt = time.Now().Add(r.retryGap)
	if dr.attempts >= r.Attempts {
		r.gaveUp.Add(1)
	}
}

// renew runs one attempt on the device's live session c and returns the client
// configuration of the new certificate, or nil (the failure is counted by reason).
func (r *Renewer) renew(ctx context.Context, d *dev, c *Client) *tls.Config {
	dr := d.renewal
	dr.attempts++
	dr.began = time.Now()
	if dr.attempts == 1 {
		r.started.Add(1)
		r.mu.Lock()
		if r.first.IsZero() || dr.began.Before(r.first) {
			r.first = dr.began
		}
		r.mu.Unlock()
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		r.fail(dr, "making the key")
		return nil
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: d.Name}}, key)
	if err != nil {
		r.fail(dr, "making the CSR")
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	if code, err := c.Subscribe(ctx, enrol.TopicCreateFromCSR+"/+", 1); err != nil || code >= 0x80 {
		r.fail(dr, fmt.Sprintf("subscribe (SUBACK 0x%02x, %v)", code, err))
		return nil
	}
	req, _ := json.Marshal(map[string]string{"certificateSigningRequest": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	if code, err := c.Publish(ctx, enrol.TopicCreateFromCSR, req, 1, false); err != nil || code >= 0x80 {
		r.fail(dr, fmt.Sprintf("publish (PUBACK 0x%02x, %v)", code, err))
		return nil
	}
	var m Message
	select {
	case m = <-dr.resp:
	case <-c.Done():
		r.fail(dr, "session ended before the response")
		return nil
	case <-ctx.Done():
		r.fail(dr, "no response within "+r.Timeout.String())
		return nil
	}
	var doc struct {
		CertificatePem string `json:"certificatePem"`
		ErrorCode      string `json:"errorCode"`
	}
	if err := json.Unmarshal(m.Payload, &doc); err != nil {
		r.fail(dr, "response is not JSON")
		return nil
	}
	if strings.HasSuffix(m.Topic, enrol.SuffixRejected) {
		r.fail(dr, "rejected: "+doc.ErrorCode)
		return nil
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		r.fail(dr, "making the key")
		return nil
	}
	cert, err := tls.X509KeyPair([]byte(doc.CertificatePem), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		r.fail(dr, "certificate does not fit the key")
		return nil
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil || leaf.Subject.CommonName != d.Name {
		r.fail(dr, "certificate for another thing")
		return nil
	}
	r.mu.Lock()
	dr.newSN = leaf.SerialNumber
	r.mu.Unlock()
	dr.pending = true
	tc := d.tls.Clone()
	tc.Certificates = []tls.Certificate{cert}
	return tc
}

// RenewStats is the renewals' outcome.
type RenewStats struct {
	Devices     int            `json:"devices"`
	Started     int64          `json:"started"`
	Renewed     int64          `json:"renewed"` // new certificate received and its session up
	Seconds     float64        `json:"seconds"` // first renewal began -> last new session up
	PerSecond   float64        `json:"renewals_per_second"`
	Failures    map[string]int `json:"failures_by_reason"` // every failed attempt
	Time        Percentiles    `json:"renewal_time"`       // key made -> new session up
	OldRevoked  int            `json:"old_revoked"`        // on the CRL as superseded and revoked in issued.json
	NewActive   int            `json:"new_active"`         // active in issued.json
	OldRefused  int            `json:"old_refused"`        // old certificates tried and refused by the gateway
	OldTried    int            `json:"old_tried"`
	Unfinished  []string       `json:"unfinished,omitempty"`
	NotRevoked  []string       `json:"not_revoked,omitempty"`
	SweepWaited float64        `json:"sweep_waited_seconds"` // last renewal -> every old certificate revoked
}

func (r *Renewer) stats() RenewStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := RenewStats{Devices: len(r.devs), Started: r.started.Load(), Renewed: r.done.Load(), Failures: maps.Clone(r.fails),
		Time: percentiles(r.times)}
	if s.Renewed > 0 && r.last.After(r.first) {
		s.Seconds = r.last.Sub(r.first).Seconds()
		s.PerSecond = float64(s.Renewed) / s.Seconds
	}
	for _, dr := range r.devs {
		if !dr.finished {
			s.Unfinished = append(s.Unfinished, dr.name)
		}
	}
	return s
}

// revocation checks, in the site's CRL and issued.json, that every renewed device's old
// certificate is revoked as superseded and its new one active; it returns the devices whose
// old certificate is not (yet) revoked.
func (r *Renewer) revocation(site *Site) (revoked, active int, missing []string, err error) {
	crl, err := pki.LoadCRL(filepath.Join(site.PKIDir(), pki.CRLFile), filepath.Join(site.PKIDir(), pki.CACertFile))
	if err != nil {
		return 0, 0, nil, err
	}
	ents, err := pki.List(pki.Options{Dir: site.PKIDir(), Devices: site.DevicesFile()})
	if err != nil {
		return 0, 0, nil, err
	}
	status := make(map[string]pki.Status, len(ents))
	for _, e := range ents {
		status[e.Serial] = e.Status
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, dr := range r.devs {
		if dr.newSN == nil {
			continue
		}
		code, ok := crl.Reason(dr.old)
		if ok && code == pki.Reasons["superseded"] && status[pki.SerialHex(dr.old)] == pki.StatusRevoked {
			revoked++
		} else {
			missing = append(missing, dr.name)
		}
		if status[pki.SerialHex(dr.newSN)] == pki.StatusActive {
			active++
		}
	}
	return revoked, active, missing, nil
}

// RenewResult is the renew scenario's outcome.
type RenewResult struct {
	Machine    string        `json:"machine"`
	Date       string        `json:"date"`
	Command    string        `json:"command"`
	Connect    ConnectResult `json:"connect"`
	Renewal    RenewStats    `json:"renewal"`
	Telemetry  Report        `json:"telemetry"`
	Gateway    GatewayStats  `json:"gateway"`             // at the end: peak RSS covers the run
	RenewCPU   float64       `json:"renewal_cpu_seconds"` // gateway CPU from the window's start to the last revocation
	RenewWall  float64       `json:"renewal_wall_seconds"`
	RenewRSS   int64         `json:"renewal_peak_rss_bytes"` // highest RSS sampled during the renewals
	Refused    int64         `json:"refused_connects"`
	Handshakes int64         `json:"failed_handshakes"`
	Pass       bool          `json:"pass"`
	Failures   []string      `json:"failures,omitempty"`
}

type renewFlags struct {
	common
	window  time.Duration
	rate    float64
	settle  time.Duration
	timeout time.Duration
	grace   time.Duration
}

func cmdRenew(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f renewFlags
	fs := flag.NewFlagSet("renew", flag.ContinueOnError)
	f.register(fs)
	fs.DurationVar(&f.window, "window", time.Minute, "every device starts its renewal at a random moment within this")
	fs.Float64Var(&f.rate, "rate", 6, "telemetry messages per minute per device, QoS 1, throughout")
	fs.DurationVar(&f.settle, "settle", time.Minute, "after the last renewal: how long the gateway may take to revoke every old certificate")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "one renewal's response must come within this")
	fs.DurationVar(&f.grace, "grace", time.Hour, "enrolment.renewal_grace of the started gateway (longer than the run: revocation must come from the new certificate connecting)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if f.addr != "" {
		fmt.Fprintln(stderr, "renew starts its own gateway on a copy of the site (renewals revoke the site's certificates): drop --addr")
		return errUsage
	}
	out := stdout
	if f.jsonOut {
		out = io.Discard
	}
	res, err := runRenew(ctx, &f, out, strings.Join(args, " "))
	if res != nil && f.jsonOut {
		printJSON(stdout, res)
	}
	if err != nil {
		return err
	}
	if !res.Pass {
		for _, m := range res.Failures {
			fmt.Fprintf(out, "FAIL: %s\n", m)
		}
		return errFailed
	}
	fmt.Fprintf(out, "PASS: %d devices renewed over MQTT under load (started within %s, the last done %.1fs after the first began), 0 messages lost, every old certificate revoked\n",
		res.Renewal.Renewed, f.window, res.Renewal.Seconds)
	return nil
}

func runRenew(ctx context.Context, f *renewFlags, out io.Writer, args string) (*RenewResult, error) {
	// The renewals revoke the site's certificates: work on a copy in the run directory.
	src, _, err := OpenSite(ctx, f.siteDir, f.floors, f.perFloor)
	if err != nil {
		return nil, err
	}
	if f.runDir == "" {
		d, err := os.MkdirTemp("", "edgegw-load-renew-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		f.runDir = d
	}
	f.siteDir = filepath.Join(f.runDir, "site")
	if err := os.RemoveAll(f.siteDir); err != nil {
		return nil, err
	}
	if err := os.CopyFS(f.siteDir, os.DirFS(src.Dir)); err != nil {
		return nil, fmt.Errorf("copying site %s: %w", src.Dir, err)
	}
	if err := restrictKeys(f.siteDir); err != nil {
		return nil, err
	}
	metricsAddr, err := FreePort()
	if err != nil {
		return nil, err
	}
	e, err := prepare(ctx, &f.common, out, GatewayConfig{Enrol: f.grace, Metrics: metricsAddr})
	if err != nil {
		return nil, err
	}
	defer e.close()
	// The monitor is one subscriber for the whole fleet: deliveries to it that the broker
	// drops when it falls behind (its inflight or write queue full) are counted here.
	subDrops := &DropCounter{URL: "http://" + metricsAddr + "/metrics", Metric: regexp.MustCompile(`^edgegw_qos1_drops_total `)}
	res := &RenewResult{Machine: machine(), Date: time.Now().UTC().Format(time.DateOnly), Command: "edgegw-load renew " + args}
	ledger := NewLedger()
	mon, err := StartMonitor(ctx, e.site, e.addr, monitorThing, "building/#", ledger, nil)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	defer mon.Close()
	var interval time.Duration
	if f.rate > 0 {
		interval = time.Duration(float64(time.Minute) / f.rate)
	}
	ren := NewRenewer(f.window, f.timeout)
	fctx, stop := context.WithCancel(ctx)
	fl := &Fleet{Site: e.site, Addr: e.addr, Version: f.mqtt, Ledger: ledger, Interval: interval, Payload: 64, Renew: ren}
	defer func() { stop(); fl.Wait() }()
	fmt.Fprintf(out, "connecting %d devices (MQTT %s), telemetry %.0f/min each...\n", len(e.site.Devices), f.mqtt, f.rate)
	res.Connect, err = connectFleet(fctx, e, fl, e.site.Devices, nil, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "  all %d connected after %.1fs; gateway RSS %s\n", res.Connect.Sessions, res.Connect.Seconds, mib(res.Connect.Gateway.RSSBytes))
	renewPhase(ctx, e, f, fl, ren, res, out)
	// The ledger: stop publishing, let the last messages arrive.
	fl.Pause(true)
	waitFor(ctx, 15*time.Second, func() bool { return ledger.Report(0).Lost == 0 })
	dropped := subDrops.Read()
	if dropped < 0 {
		res.Failures = append(res.Failures, "the gateway's metrics ("+subDrops.URL+") could not be read: its drops are unknown")
	}
	res.Telemetry = ledger.Report(max(0, dropped))
	res.Telemetry.Print(out, "telemetry ledger (devices -> gateway -> monitor) across the renewals:")
	if !res.Telemetry.OK() || res.Telemetry.Lost > 0 {
		msg := fmt.Sprintf("%d acknowledged messages lost: %v", res.Telemetry.Lost, ledger.LostKeys(5))
		if d := res.Telemetry.Dropped; d > 0 {
			msg += fmt.Sprintf("; the gateway dropped %d QoS 1 deliveries to the monitor (edgegw_qos1_drops_total: the one subscriber of the whole fleet did not acknowledge fast enough)", d)
		}
		res.Failures = append(res.Failures, msg)
	}
	probeOldCerts(ctx, e, ren, &res.Renewal)
	fmt.Fprintf(out, "old certificates refused by the gateway: %d of %d tried\n", res.Renewal.OldRefused, res.Renewal.OldTried)
	if res.Renewal.OldRefused != res.Renewal.OldTried {
		res.Failures = append(res.Failures, fmt.Sprintf("the gateway accepted %d renewed-away certificates", res.Renewal.OldTried-res.Renewal.OldRefused))
	}
	res.Gateway = toGW(e.gwStats())
	fmt.Fprintf(out, "gateway: CPU %.1fs in all, RSS %s, peak RSS (VmHWM) %s\n", res.Gateway.CPUSeconds, mib(res.Gateway.RSSBytes), mib(res.Gateway.PeakRSS))
	res.Pass = len(res.Failures) == 0
	return res, nil
}

// renewPhase opens the window, waits for every device to renew (or give up) and for the
// gateway to revoke every old certificate, and measures the gateway meanwhile.
func renewPhase(ctx context.Context, e *env, f *renewFlags, fl *Fleet, ren *Renewer, res *RenewResult, out io.Writer) {
	h0, r0 := fl.FailedHandshakes(), fl.RefusedConnects()
	cpu0 := e.gwStats().CPU
	t0 := time.Now()
	var peak atomic.Int64
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() { // the gateway's RSS every 250 ms while the renewals run
		defer close(sampled)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if rss := e.gwStats().RSS; rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	fmt.Fprintf(out, "renewal window %s opens: each device makes a key and CSR, calls create-from-csr on its session, reconnects with the new certificate\n", f.window)
	ren.Open(t0)
	limit := f.window + time.Duration(ren.Attempts)*(f.timeout+ren.retryGap) + time.Minute
	waitFor(ctx, limit, ren.settled)
	res.Renewal = ren.stats()
	tLast := time.Now()
	var missing []string
	ok := waitFor(ctx, f.settle, func() bool {
		var err error
		res.Renewal.OldRevoked, res.Renewal.NewActive, missing, err = ren.revocation(e.site)
		return err == nil && len(missing) == 0
	})
	res.Renewal.SweepWaited = time.Since(tLast).Seconds()
	res.Renewal.NotRevoked = missing
	stopSampling()
	<-sampled
	if e.gw.Exited() {
		res.Failures = append(res.Failures, "edgegw run exited during the renewals:\n"+e.gw.Tail(2000))
	}
	res.RenewCPU, res.RenewWall, res.RenewRSS = max(0, (e.gwStats().CPU-cpu0).Seconds()), time.Since(t0).Seconds(), peak.Load()
	res.Refused, res.Handshakes = fl.RefusedConnects()-r0, fl.FailedHandshakes()-h0
	rs := res.Renewal
	fmt.Fprintf(out, "renewed %d/%d (started %d) in %.1fs: %.1f renewals/s; renewal time p50 %s p99 %s max %s\n",
		rs.Renewed, rs.Devices, rs.Started, rs.Seconds, rs.PerSecond, round(rs.Time.P50), round(rs.Time.P99), round(rs.Time.Max))
	for _, k := range slices.Sorted(maps.Keys(rs.Failures)) {
		fmt.Fprintf(out, "  failed attempts: %5d  %s\n", rs.Failures[k], k)
	}
	fmt.Fprintf(out, "reconnects refused %d, failed handshakes %d during the renewals\n", res.Refused, res.Handshakes)
	fmt.Fprintf(out, "old certificates revoked (CRL superseded, issued.json revoked) %d/%d, new ones active %d, %.1fs after the last renewal\n",
		rs.OldRevoked, rs.Renewed, rs.NewActive, rs.SweepWaited)
	fmt.Fprintf(out, "gateway during the renewals: CPU %.1fs over %.1fs (%.0f%% of one core), peak RSS sampled %s\n",
		res.RenewCPU, res.RenewWall, 100*res.RenewCPU/max(res.RenewWall, 1e-9), mib(res.RenewRSS))
	if rs.Renewed != int64(rs.Devices) {
		res.Failures = append(res.Failures, fmt.Sprintf("%d of %d devices did not renew: %v", rs.Devices-int(rs.Renewed), rs.Devices, first(rs.Unfinished, 5)))
	}
	if !ok || rs.OldRevoked != int(rs.Renewed) || rs.NewActive != int(rs.Renewed) {
		res.Failures = append(res.Failures, fmt.Sprintf("%d old certificates not revoked as superseded within %s (%v); %d of %d new ones active",
			len(missing), f.settle, first(missing, 5), rs.NewActive, rs.Renewed))
	}
}

// probeOldCerts connects with up to 5 renewed-away certificates (the fleet is paused): the
// gateway must refuse each once it has read the CRL that revokes it (it watches the file:
// each is tried again for up to 5 s).
func probeOldCerts(ctx context.Context, e *env, ren *Renewer, rs *RenewStats) {
	ren.mu.Lock()
	var olds []*devRenewal
	for _, dr := range ren.devs {
		if dr.finished && len(olds) < 5 {
			olds = append(olds, dr)
		}
	}
	ren.mu.Unlock()
	for _, dr := range olds {
		rs.OldTried++
		refused := waitFor(ctx, 5*time.Second, func() bool {
			c, err := Dial(ctx, e.addr, dr.oldTLS, ClientOptions{ClientID: dr.name, Version: 5, Clean: true})
			var de *dialError
			if errors.As(err, &de) && (de.stage == "handshake" || de.stage == "connack") {
				return true // refused by the TLS handshake (CRL) or at CONNECT
			}
			if err != nil {
				return false // not an answer about the certificate (the gateway is gone?)
			}
			c.Close()
			time.Sleep(200 * time.Millisecond)
			return false
		})
		if refused {
			rs.OldRefused++
		}
	}
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// restrictKeys makes the private keys of a copied site readable by the owner only again.
func restrictKeys(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".key") {
			return err
		}
		return os.Chmod(p, 0o600)
	})
}
