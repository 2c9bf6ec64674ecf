package clock

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// fakeSystem is an injected system clock.
type fakeSystem struct{ ns atomic.Int64 }

func (f *fakeSystem) set(t time.Time)       { f.ns.Store(t.UnixNano()) }
func (f *fakeSystem) now() time.Time        { return time.Unix(0, f.ns.Load()).UTC() }
func newFakeSystem(t time.Time) *fakeSystem { f := &fakeSystem{}; f.set(t); return f }

func TestClockGuard(t *testing.T) {
	build := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	epoch := time.Unix(0, 0).UTC()
	later := build.Add(72 * time.Hour)
	for _, tc := range []struct {
		name           string
		system         time.Time
		wantNow        time.Time
		wantAge        time.Time
		wantSane, warn bool
	}{
		{"1970 after boot without RTC", epoch.Add(42 * time.Second), build, epoch, false, true},
		{"stale fake-hwclock a week before the build", build.Add(-7 * 24 * time.Hour), build, epoch, false, true},
		{"exactly the build date", build, build, build, true, false},
		{"set by NTP", later, later, later, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			sys := newFakeSystem(tc.system)
			c := New(build, sys.now, slog.New(slog.NewTextHandler(&buf, nil)))
			if got := c.Now(); !got.Equal(tc.wantNow) {
				t.Errorf("Now() = %v; want %v", got, tc.wantNow)
			}
			if got := c.AgeNow(); !got.Equal(tc.wantAge) {
				t.Errorf("AgeNow() = %v; want %v", got, tc.wantAge)
			}
			if got := c.Sane(); got != tc.wantSane {
				t.Errorf("Sane() = %v; want %v", got, tc.wantSane)
			}
			c.Now()
			c.Now()
			n := strings.Count(buf.String(), "is before the build date")
			want := 0
			if tc.warn {
				want = 1
			}
			if n != want {
				t.Errorf("got %d warnings; want %d; log:\n%s", n, want, buf.String())
			}
			if tc.warn && !strings.Contains(buf.String(), "level=WARN") {
				t.Errorf("warning not at Warn level: %s", buf.String())
			}
		})
	}
}

func TestClockWarnsOnceWithDatesAndHint(t *testing.T) {
	build := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	sys := newFakeSystem(time.Unix(5, 0))
	var buf gatewaytest.Buffer
	c := New(build, sys.now, slog.New(slog.NewTextHandler(&buf, nil)))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				c.Now()
			}
		}()
	}
	wg.Wait()
	out := buf.String()
	if n := strings.Count(out, "is before the build date"); n != 1 {
		t.Fatalf("got %d warnings from concurrent Now; want 1:\n%s", n, out)
	}
	for _, want := range []string{"system clock 1970-01-01T00:00:05Z", "build date 2026-11-20T00:00:00Z", "no RTC? check NTP", "component=clock"} {
		if !strings.Contains(out, want) {
			t.Errorf("warning lacks %q: %s", want, out)
		}
	}
	// Clock set by NTP: the system time is used, and there is no new warning.
	sys.set(build.Add(time.Hour))
	if got := c.Now(); !got.Equal(build.Add(time.Hour)) {
		t.Errorf("Now() after NTP = %v; want the system time", got)
	}
}

func TestClockWithoutLoggerWarnsWhenOneIsSet(t *testing.T) {
	sys := newFakeSystem(time.Unix(0, 0))
	c := New(time.Time{}, sys.now, nil)
	if got := c.Now(); !got.Equal(DefaultBuildFloor) {
		t.Fatalf("Now() with no build date = %v; want DefaultBuildFloor %v", got, DefaultBuildFloor)
	}
	var buf gatewaytest.Buffer
	c.SetLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	c.Now()
	if !strings.Contains(buf.String(), "is before the build date") {
		t.Fatalf("no warning once a logger is set: %q", buf.String())
	}
}

// TestClockGuardCertificateCheck: a certificate valid from the build day
// verifies with the guard while the system clock says 1970, and does not
// without it.
func TestClockGuardCertificateCheck(t *testing.T) {
	build := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: build.Add(-time.Hour), NotAfter: build.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	sys := newFakeSystem(time.Unix(100, 0))
	c := New(build, sys.now, nil)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: c.Now()}); err != nil {
		t.Errorf("with the guard: %v; want valid", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: sys.now()}); err == nil {
		t.Errorf("without the guard: valid; want expired/not yet valid")
	}
}

func TestParseBuildDate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-11-22T02:55:00Z", time.Date(2026, 11, 22, 2, 55, 0, 0, time.UTC)},
		{"2026-11-22T03:55:00+01:00", time.Date(2026, 11, 22, 2, 55, 0, 0, time.UTC)},
		{"1795143300", time.Unix(1795143300, 0).UTC()},
		{"", time.Time{}},
		{"yesterday", time.Time{}},
		{"12abc", time.Time{}},
	} {
		if got := ParseBuildDate(tc.in); !got.Equal(tc.want) {
			t.Errorf("ParseBuildDate(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}
