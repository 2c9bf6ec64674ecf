package pkicmd

import (
	"time"

	"github.com/edgegw/edgegw/gateway/pki"
)

// The -o json documents of the pki commands (pki list prints []pki.Entry).
// Their help lists the keys (cmd/edgegw's output_schema.go generates it from these types).

// InitJSON is `edgegw pki init -o json` and `pki import-ca -o json`.
type InitJSON struct {
	Dir          string    `json:"dir"`
	CASubject    string    `json:"ca_subject,omitempty"`  // left out with --csr
	CANotAfter   time.Time `json:"ca_not_after,omitzero"` // left out with --csr
	CSR          string    `json:"csr_file,omitempty"`    // init --csr: the CSR for the root to sign
	Files        []string  `json:"files"`                 // files written
	Warnings     []string  `json:"warnings"`              // import-ca: what the chain lacks (also on stderr)
	ClockClamped bool      `json:"clock_clamped"`         // the clock was before the build: certificates start at the build date
}

// CertJSON is one certificate issue, sign or claim made.
type CertJSON struct {
	Thing      string    `json:"thing"`
	Serial     string    `json:"serial"` // lower-case hex
	NotAfter   time.Time `json:"not_after"`
	CertFile   string    `json:"cert_file"`
	KeyFile    string    `json:"key_file,omitempty"` // left out for a signed CSR: the key stays on the device
	CAFile     string    `json:"ca_file"`
	Superseded []string  `json:"superseded"` // serials renewed away (--renew), now on the CRL
}

// IssueJSON is `edgegw pki issue|sign|claim -o json`.
type IssueJSON struct {
	Count        int        `json:"count"`
	Certificates []CertJSON `json:"certificates"`
	Registry     string     `json:"registry"`
	PolicyFile   string     `json:"policy_file,omitempty"` // claim: the claim's policy
	ClockClamped bool       `json:"clock_clamped"`
}

func pkiIssueView(bs []pki.Bundle, registry string, clamped bool) IssueJSON {
	v := IssueJSON{Count: len(bs), Certificates: []CertJSON{}, Registry: registry, ClockClamped: clamped}
	for _, b := range bs {
		c := CertJSON{Thing: b.Thing, Serial: b.Serial, CertFile: b.CertFile, KeyFile: b.KeyFile, CAFile: b.CAFile,
			Superseded: append([]string{}, b.Superseded...)}
		if b.Cert != nil {
			c.NotAfter = b.Cert.NotAfter.UTC()
		}
		v.Certificates = append(v.Certificates, c)
	}
	return v
}

// RevokeJSON is `edgegw pki revoke -o json`.
type RevokeJSON struct {
	Revoked      []pki.Entry `json:"revoked"`
	CRLNumber    int64       `json:"crl_number,omitempty"` // left out when nothing was revoked
	CRLFile      string      `json:"crl_file"`
	NothingToDo  string      `json:"nothing_to_do,omitempty"` // why nothing was revoked (exit 0)
	ClockClamped bool        `json:"clock_clamped"`
}

// CRLJSON is `edgegw pki crl -o json`.
type CRLJSON struct {
	Resigned   bool      `json:"resigned"` // false: --refresh-before and not due yet
	CRLNumber  int64     `json:"crl_number"`
	Revoked    *int      `json:"revoked,omitempty"` // entries on the new CRL; left out when not re-signed
	NextUpdate time.Time `json:"next_update,omitzero"`
	CRLFile    string    `json:"crl_file"`
	Message    string    `json:"message"` // the text form's line
}

// ServerJSON is `edgegw pki server -o json`.
type ServerJSON struct {
	Action     string    `json:"action"` // issued, renewed or not_due
	Serial     string    `json:"serial"` // lower-case hex
	Hosts      []string  `json:"hosts"`
	NotAfter   time.Time `json:"not_after"`
	CertFile   string    `json:"cert_file"`
	Key        string    `json:"key"`         // the key URI, secrets (PINs) redacted
	KeyChanged bool      `json:"key_changed"` // the daemon must be restarted to serve it
}
