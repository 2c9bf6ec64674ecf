package enrol

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/pki"
)

// BenchmarkRenewal measures one renewal over the API on a site of 2,000 devices:
// CreateCertificateFromCsr (CSR check, signing, issued.json rewrite, enrol.json rewrite),
// Connected of the new certificate (enrol.json rewrite) and a Sweep every 50 renewals (one CRL
// for them all). CSRs are made outside the timer.
func BenchmarkRenewal(b *testing.B) {
	const fleet = 2000
	root := b.TempDir()
	o := pki.Options{Dir: filepath.Join(root, "pki"), Devices: filepath.Join(root, "devices.yaml")}
	ctx := context.Background()
	if _, err := pki.Init(ctx, o, pki.InitOptions{Hosts: []string{"localhost"}}); err != nil {
		b.Fatal(err)
	}
	reqs := make([]pki.IssueRequest, fleet)
	for i := range reqs {
		reqs[i] = pki.IssueRequest{Thing: fmt.Sprintf("sensor-%04X", i)}
	}
	res, err := pki.Issue(ctx, o, "", reqs...)
	if err != nil {
		b.Fatal(err)
	}
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
