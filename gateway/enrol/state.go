package enrol

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/edgegw/edgegw/hw"
)

// StateFile is kept in the PKI directory: the open ownership tokens (their SHA-256 only) and
// the renewals waiting for the new certificate to connect, so a restart loses neither.
const StateFile = "enrol.json"

type state struct {
	Version  int        `json:"version"`
	Tokens   []tokenRec `json:"tokens"`
	Renewals []renewal  `json:"renewals"`
}

// tokenRec is one certificateOwnershipToken, bound to the certificate it came with and to the
// connection (certificate serial and client ID) that asked for it.
type tokenRec struct {
	Hash          string    `json:"sha256"` // hex SHA-256 of the token; the token itself is never stored
	CertificateID string    `json:"certificate_id"`
	Serial        string    `json:"serial"`
	Thing         string    `json:"thing"` // the CSR's CN
	CallerSerial  string    `json:"caller_serial"`
	ClientID      string    `json:"client_id"`
	Renewal       bool      `json:"renewal,omitempty"`
	Expires       time.Time `json:"expires"`
	CertPEM       string    `json:"certificate_pem"` // for the pre-provisioning hook's input
}

// renewal is a new certificate issued to a device that still holds Old.
type renewal struct {
	Old      string    `json:"old"`
	New      string    `json:"new"`
	Thing    string    `json:"thing"`
	Deadline time.Time `json:"deadline"`
	// Connected: the new certificate has connected; the next Sweep revokes Old.
	Connected bool `json:"connected,omitempty"`
}

func loadState(path string) (state, error) {
	var st state
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return state{Version: 1}, nil
	}
	if err != nil {
		return st, fmt.Errorf("reading enrolment state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("reading enrolment state %s: %w (move it aside to start over: open tokens are then void)", path, err)
	}
	return st, nil
}

// save writes the state atomically (hw.WriteFileAtomic: temporary file, fsync, rename, fsync of
// the directory), readable by the owner only.
func (st *state) save(path string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := hw.WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// bucket is a token bucket: tokens refill at one per every, up to burst.
type bucket struct {
	tokens float64
	last   time.Time
}

// take reports whether a request may go now, and spends a token if so.
func (b *bucket) take(now time.Time, rl RateLimit) bool {
	if b.last.IsZero() {
		b.tokens, b.last = float64(rl.Burst), now
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens += float64(el) / float64(rl.Every)
		if b.tokens > float64(rl.Burst) {
			b.tokens = float64(rl.Burst)
		}
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full reports whether the bucket has refilled completely by now (it can be forgotten).
func (b *bucket) full(now time.Time, rl RateLimit) bool {
	return b.tokens+float64(now.Sub(b.last))/float64(rl.Every) >= float64(rl.Burst)
}
