package enrol

import (
	"context"
	"testing"

	"github.com/edgegw/edgegw/gateway/pki"
)

// Stats, what `edgegw status` shows: claim requests and distinct claims, issued and renewed
// certificates, refusals by errorCode, renewals waiting for the old certificate's revocation,
// and the nearest expiry among active device certificates (not the old one of a renewal).
func TestStats(t *testing.T) {
	s := newSite(t, Config{})
	ctx := context.Background()
	st, err := s.svc.Stats(s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Templates) != 1 || st.Templates[0] != "sensors" || st.ClaimRequests != 0 || st.Nearest != nil || st.AwaitingRevocation != 0 {
		t.Fatalf("fresh Stats = %+v; want template sensors, nothing counted, no device certificate", st)
	}

	s.enrolCSR("sensor-00AB", Caller{})
	rejected(t, s.call(TopicCreateFromCSR, CreateCertificateFromCSRRequest{CertificateSigningRequest: csrPEM(t, newKey(t), "not-a-sensor")}, s.claim), TopicCreateFromCSR, 400, CodeInvalidCSR)
	rejected(t, s.call(TopicCreateKeys, []byte(`{}`), s.claim), TopicCreateKeys, 400, CodeNotSupported)

	// A device issued by hand (365 days) renews itself with a shorter certificate (10 days).
	dev, err := pki.Issue(ctx, s.pki, "", pki.IssueRequest{Thing: "sensor-0001", Type: "temperature", Days: 365})
	if err != nil {
		t.Fatal(err)
	}
	old := dev.Bundles[0]
	s.cfg.Days = 10
	s.svc = s.open()
	device := Caller{ClientID: "sensor-0001", ThingName: "sensor-0001", Serial: old.Serial, Cert: old.Cert}
	cr := s.enrolCSR("sensor-0001", device)
	ns := pki.SerialHex(parseCert(t, cr.CertificatePem).SerialNumber)

	st, err = s.svc.Stats(s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.ClaimRequests != 0 || st.Renewed != 1 || st.Issued != 0 {
		t.Errorf("after a restart and a renewal: claim requests %d, renewed %d, issued %d; want 0, 1, 0 (counters start with the service)", st.ClaimRequests, st.Renewed, st.Issued)
	}
	if st.AwaitingRevocation != 1 {
		t.Errorf("AwaitingRevocation = %d; want 1 (the old certificate of sensor-0001)", st.AwaitingRevocation)
	}
	if st.Nearest == nil || st.Nearest.Serial != ns || st.ExpiringSoon != 1 {
		t.Errorf("Nearest = %+v, ExpiringSoon %d; want the renewed certificate %s (10 days) and 1 soon", st.Nearest, st.ExpiringSoon, ns)
	}

	// Counters of one service's life.
	s2 := newSite(t, Config{})
	s2.enrolCSR("sensor-00AB", Caller{})
	s2.enrolCSR("sensor-00AC", Caller{})
	rejected(t, s2.call(TopicCreateFromCSR, CreateCertificateFromCSRRequest{CertificateSigningRequest: csrPEM(t, newKey(t), "not-a-sensor")}, s2.claim), TopicCreateFromCSR, 400, CodeInvalidCSR)
	rejected(t, s2.call(TopicCreateKeys, []byte(`{}`), s2.claim), TopicCreateKeys, 400, CodeNotSupported)
	st, err = s2.svc.Stats(s2.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.ClaimRequests != 4 || st.Claims != 1 || st.Issued != 2 {
		t.Errorf("claim requests %d, claims %d, issued %d; want 4, 1, 2", st.ClaimRequests, st.Claims, st.Issued)
	}
	if st.Rejected[CodeInvalidCSR] != 1 || st.Rejected[CodeNotSupported] != 1 || len(st.Rejected) != 2 {
		t.Errorf("Rejected = %v; want %s 1 and %s 1", st.Rejected, CodeInvalidCSR, CodeNotSupported)
	}
	if st.Nearest != nil {
		t.Errorf("Nearest = %+v; want none: pending certificates are not yet in service", st.Nearest)
	}
}
