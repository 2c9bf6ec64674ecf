package hw

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// flakyTPM answers the first n commands with rc, then success.
type flakyTPM struct {
	n, sent int
	rc      tpm2.TPMRC
}

func (f *flakyTPM) Send([]byte) ([]byte, error) {
	f.sent++
	rsp := make([]byte, 10)
	binary.BigEndian.PutUint16(rsp[0:2], uint16(tpm2.TPMSTNoSessions))
	binary.BigEndian.PutUint32(rsp[2:6], 10)
	if f.sent <= f.n {
		binary.BigEndian.PutUint32(rsp[6:10], uint32(f.rc))
	}
	return rsp, nil
}

func TestRetrying(t *testing.T) {
	for _, tc := range []struct {
		name     string
		n        int
		rc       tpm2.TPMRC
		wantSent int
		wantRC   tpm2.TPMRC
	}{
		{"retry-then-ok", 3, tpm2.TPMRCRetry, 4, 0},
		{"yielded-then-ok", 1, tpm2.TPMRCYielded, 2, 0},
		{"testing-then-ok", 1, tpm2.TPMRCTesting, 2, 0},
		{"retry-forever-is-bounded", 1000, tpm2.TPMRCRetry, tpmRetries + 1, tpm2.TPMRCRetry},
		{"other-errors-not-retried", 5, tpm2.TPMRCHandle, 1, tpm2.TPMRCHandle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &flakyTPM{n: tc.n, rc: tc.rc}
			rsp, err := retrying{f}.Send([]byte{0})
			if err != nil {
				t.Fatal(err)
			}
			if got := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])); f.sent != tc.wantSent || got != tc.wantRC {
				t.Fatalf("got %d sends, rc %v; want %d, %v", f.sent, got, tc.wantSent, tc.wantRC)
			}
		})
	}
}
