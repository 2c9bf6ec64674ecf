package enrol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/pki"
)

// Examples of RFC 8949 Appendix A: each JSON value encodes to exactly these bytes, and the
// bytes decode back to the value.
func TestCBORAppendixA(t *testing.T) {
	for _, tc := range []struct{ json, hex string }{
		{`0`, "00"}, {`23`, "17"}, {`24`, "1818"}, {`100`, "1864"}, {`1000`, "1903e8"}, {`1000000`, "1a000f4240"},
		{`1000000000000`, "1b000000e8d4a51000"}, {`-1`, "20"}, {`-100`, "3863"}, {`-1000`, "3903e7"},
		{`false`, "f4"}, {`true`, "f5"}, {`null`, "f6"},
		{`""`, "60"}, {`"a"`, "6161"}, {`"IETF"`, "6449455446"}, {`"\"\\"`, "62225c"}, {`"ü"`, "62c3bc"},
		{`[]`, "80"}, {`[1,2,3]`, "83010203"}, {`[1,[2,3],[4,5]]`, "8301820203820405"},
		{`{}`, "a0"}, {`{"a":1,"b":[2,3]}`, "a26161016162820203"}, {`["a",{"b":"c"}]`, "826161a161626163"},
	} {
		t.Run(tc.json, func(t *testing.T) {
			got, err := jsonToCBOR([]byte(tc.json))
			if err != nil || hex.EncodeToString(got) != tc.hex {
				t.Fatalf("encode %s = %x, %v; want %s", tc.json, got, err, tc.hex)
			}
			raw, _ := hex.DecodeString(tc.hex)
			back, err := cborToJSON(raw)
			if err != nil {
				t.Fatalf("decode %s: %v", tc.hex, err)
			}
			var a, b any
			_ = json.Unmarshal(back, &a)
			_ = json.Unmarshal([]byte(tc.json), &b)
			if ja, jb := mustJSON(a), mustJSON(b); ja != jb {
				t.Errorf("decode %s = %s; want %s", tc.hex, ja, jb)
			}
		})
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestCBORRefusals(t *testing.T) {
	for _, tc := range []struct{ name, hex, want string }{
		{"byte string", "4401020304", "major type 2"},
		{"tag", "c074323031332d30332d32315432303a30343a30305a", "major type 6"},
		{"half float", "f93c00", "major type 7"},
		{"indefinite array", "9f018202039f0405ffff", "indefinite"},
		{"duplicate key", "a2616101616102", `"a" twice`},
		{"integer key", "a10102", "key is not text"},
		{"truncated", "a26161", "truncated"},
		{"huge length", "7b7fffffffffffffff", "truncated"},
		{"trailing", "0000", "after the data item"},
		{"text not UTF-8", "6330a130", "not UTF-8"},
		{"too deep", strings.Repeat("81", 12) + "00", "nested deeper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := hex.DecodeString(tc.hex)
			if _, err := cborToJSON(raw); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want an error saying %q", err, tc.want)
			}
		})
	}
}

// The claim flow over the /cbor topics: the same documents, in CBOR, answered on /cbor/accepted.
func TestClaimEnrolmentCBOR(t *testing.T) {
	s := newSite(t, Config{})
	call := func(topic string, v any) (string, map[string]any) {
		t.Helper()
		j, _ := json.Marshal(v)
		c, err := jsonToCBOR(j)
		if err != nil {
			t.Fatal(err)
		}
		rs := s.svc.Handle(t.Context(), Request{Topic: topic, Payload: c, Caller: s.claim})
		back, err := cborToJSON(rs[0].Payload)
		if err != nil {
			t.Fatalf("answer on %s is not CBOR: %v", rs[0].Topic, err)
		}
		var m map[string]any
		_ = json.Unmarshal(back, &m)
		return rs[0].Topic, m
	}
	topic, m := call(CBOR(TopicCreateFromCSR), CreateCertificateFromCSRRequest{CertificateSigningRequest: csrPEM(t, newKey(t), "sensor-0C0C")})
	if topic != CBOR(TopicCreateFromCSR)+SuffixAccepted || m["certificateOwnershipToken"] == nil {
		t.Fatalf("%s: %v", topic, m)
	}
	serial := pki.SerialHex(parseCert(t, m["certificatePem"].(string)).SerialNumber)
	topic, m = call(CBOR(ProvisionTopic("sensors")), RegisterThingRequest{CertificateOwnershipToken: m["certificateOwnershipToken"].(string), Parameters: map[string]string{"SerialNumber": "0C0C"}})
	if topic != CBOR(ProvisionTopic("sensors"))+SuffixAccepted || m["thingName"] != "sensor-0C0C" {
		t.Fatalf("%s: %v", topic, m)
	}
	if e := s.entry(serial); e.Status != pki.StatusActive {
		t.Errorf("certificate is %s; want active", e.Status)
	}
	before := s.snapshot()
	rs := s.svc.Handle(t.Context(), Request{Topic: CBOR(TopicCreateFromCSR), Payload: []byte{0x44, 1, 2, 3, 4}, Caller: s.claim})
	back, err := cborToJSON(rs[0].Payload)
	if err != nil || rs[0].Topic != CBOR(TopicCreateFromCSR)+SuffixRejected || !bytes.Contains(back, []byte(`"errorCode":"InvalidPayload"`)) || !bytes.Contains(back, []byte(`"statusCode":400`)) {
		t.Errorf("byte-string payload: %s %s %v; want a CBOR InvalidPayload rejection", rs[0].Topic, back, err)
	}
	s.unchanged(before)
}

// Payloads from devices: the CBOR reader must never panic, and what it reads must survive a
// round trip through the writer.
func FuzzCBOR(f *testing.F) {
	for _, h := range []string{"a26161016162820203", "826161a161626163", "9f", "7b7fffffffffffffff", "a1781863657274696669636174655369676e696e6752657175657374" + "6161"} {
		b, _ := hex.DecodeString(h)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := cborToJSON(data)
		if err != nil {
			return
		}
		c, err := jsonToCBOR(j)
		if err != nil {
			t.Fatalf("re-encoding %s: %v", j, err)
		}
		j2, err := cborToJSON(c)
		if err != nil || !bytes.Equal(j, j2) {
			t.Fatalf("round trip %x -> %s -> %x -> %s (%v)", data, j, c, j2, err)
		}
	})
}
