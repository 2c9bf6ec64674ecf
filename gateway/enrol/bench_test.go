package enrol

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/pki"
)

// benchFleet is a site PKI in b's temporary directory with n devices issued
// (sensor-0000, sensor-0001, ...): its options and the issued bundles.
func benchFleet(b *testing.B, n int) (pki.Options, *pki.IssueResult) {
	b.Helper()
	root := b.TempDir()
	o := pki.Options{Dir: filepath.Join(root, "pki"), Devices: filepath.Join(root, "devices.yaml")}
	ctx := context.Background()
	if _, err := pki.Init(ctx, o, pki.InitOptions{Hosts: []string{"localhost"}}); err != nil {
		b.Fatal(err)
	}
	reqs := make([]pki.IssueRequest, n)
	for i := range reqs {
		reqs[i] = pki.IssueRequest{Thing: fmt.Sprintf("sensor-%04X", i)}
	}
	res, err := pki.Issue(ctx, o, "", reqs...)
	if err != nil {
		b.Fatal(err)
	}
	return o, res
}

// BenchmarkRenewal measures one renewal over the API on a site of 2,000 devices:
// CreateCertificateFromCsr (CSR check, signing, issued.json rewrite, enrol.json rewrite),
// Connected of the new certificate (enrol.json rewrite) and a Sweep every 50 renewals (one CRL
// for them all). CSRs are made outside the timer.
func BenchmarkRenewal(b *testing.B) {
	const fleet = 2000
	ctx := context.Background()
	o, res := benchFleet(b, fleet)
	svc, err := New(Options{PKI: o, Config: Config{Templates: []Template{sensorsTemplate()}, RateLimit: RateLimit{Burst: 1000, Every: time.Millisecond}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		d := res.Bundles[i%fleet]
		if i >= fleet {
			b.Fatal("run at most 2000 iterations (-benchtime=Nx)")
		}
		csr := csrPEM(b, newKey(b), d.Thing)
		payload := marshal(CreateCertificateFromCSRRequest{CertificateSigningRequest: csr})
		b.StartTimer()
		rs := svc.Handle(ctx, Request{Topic: TopicCreateFromCSR, Payload: payload, Caller: Caller{ClientID: d.Thing, ThingName: d.Thing, Serial: d.Serial}})
		if rs[0].Topic != TopicCreateFromCSR+SuffixAccepted {
			b.Fatalf("%s: %s", rs[0].Topic, rs[0].Payload)
		}
		var cr CreateCertificateFromCSRResponse
		mustUnmarshal(b, rs[0].Payload, &cr)
		blk := parseCert(b, cr.CertificatePem)
		if err := svc.Connected(ctx, pki.SerialHex(blk.SerialNumber)); err != nil {
			b.Fatal(err)
		}
		if i%50 == 49 || i == b.N-1 { // the broker sweeps every few seconds
			if _, err := svc.Sweep(ctx, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkRenewalBatch measures renewals arriving together on a site of 2,000 devices: each
// iteration is 200 devices calling CreateCertificateFromCsr at once (signed in batches), then
// Connected for each and one Sweep. Reported per renewal.
func BenchmarkRenewalBatch(b *testing.B) {
	const fleet, wave = 2000, 200
	ctx := context.Background()
	o, res := benchFleet(b, fleet)
	svc, err := New(Options{PKI: o, Config: Config{Templates: []Template{sensorsTemplate()}}})
	if err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, fleet)
	for i, d := range res.Bundles {
		payloads[i] = marshal(CreateCertificateFromCSRRequest{CertificateSigningRequest: csrPEM(b, newKey(b), d.Thing)})
	}
	if b.N*wave > fleet {
		b.Fatalf("run at most %d iterations (-benchtime=Nx)", fleet/wave)
	}
	b.ResetTimer()
	for i := range b.N {
		var wg sync.WaitGroup
		for j := i * wave; j < (i+1)*wave; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := res.Bundles[j]
				rs := svc.Handle(ctx, Request{Topic: TopicCreateFromCSR, Payload: payloads[j], Caller: Caller{ClientID: d.Thing, ThingName: d.Thing, Serial: d.Serial}})
				if rs[0].Topic != TopicCreateFromCSR+SuffixAccepted {
					b.Errorf("%s: %s", rs[0].Topic, rs[0].Payload)
					return
				}
				var cr CreateCertificateFromCSRResponse
				mustUnmarshal(b, rs[0].Payload, &cr)
				_ = svc.Connected(ctx, pki.SerialHex(parseCert(b, cr.CertificatePem).SerialNumber))
			}()
		}
		wg.Wait()
		if _, err := svc.Sweep(ctx, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*wave), "ns/renewal")
	b.ReportMetric(float64(svc.signings.Load())/float64(b.N), "pki.Issue/wave")
}
