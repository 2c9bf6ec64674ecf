package est

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Identity is a TLS client identity: a certificate chain (leaf first) and its key, which may
// live anywhere a crypto.Signer reaches (file, TPM, HSM).
type Identity struct {
	Chain []*x509.Certificate
	Key   crypto.Signer
}

// Client talks to one EST server (RFC 7030).
type Client struct {
	// Server is the base URL, "https://est.example:8443"; Label the optional CA label
	// (RFC 7030 3.2.2: /.well-known/est/<label>/...).
	Server string
	Label  string
	// RootCAs are the explicit trust anchors for the server's certificate (RFC 7030 3.6.1);
	// nil means the system roots.
	RootCAs *x509.CertPool
	// Identity authenticates the client in TLS (required for simplereenroll; optional for
	// simpleenroll, which may use Username/Password instead).
	Identity *Identity
	// Username and Password are sent as HTTP Basic authentication when set (RFC 7030 3.2.3).
	Username, Password string
	// Timeout bounds each request (default 30 s).
	Timeout time.Duration
}

// RetryError is the server's 202 Accepted with Retry-After (RFC 7030 4.2.3): the request was
// accepted for manual approval; send it again after After.
type RetryError struct{ After time.Duration }

func (e *RetryError) Error() string {
	return fmt.Sprintf("the EST server accepted the request for later processing: retry in %s", e.After)
}

// StatusError is any other non-200 answer.
type StatusError struct {
	Op     string
	Status int
	Body   string // the first 256 bytes of the server's explanation
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("EST %s: HTTP %d: %s", e.Op, e.Status, e.Body)
}

// maxBody bounds a response body.
const maxBody = 1 << 20

func (c *Client) url(op string) (string, error) {
	u, err := url.Parse(c.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("EST server %q: want https://host[:port]", c.Server)
	}
	p := "/.well-known/est/"
	if c.Label != "" {
		p += url.PathEscape(c.Label) + "/"
	}
	u.Path = strings.TrimRight(u.Path, "/") + p + op
	return u.String(), nil
}

func (c *Client) httpClient() *http.Client {
	cfg := &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12}
	if id := c.Identity; id != nil && len(id.Chain) > 0 && id.Key != nil {
		cert := tls.Certificate{PrivateKey: id.Key, Leaf: id.Chain[0]}
		for _, x := range id.Chain {
			cert.Certificate = append(cert.Certificate, x.Raw)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: false, DisableKeepAlives: true}}
}

// do sends one request and returns the decoded (base64) body of a 200 answer.
func (c *Client) do(ctx context.Context, op, method string, body []byte) ([]byte, error) {
	u, err := c.url(op)
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(encodeBase64(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/pkcs10")
		req.Header.Set("Content-Transfer-Encoding", "base64")
	}
	if c.Username != "" || c.Password != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("EST %s at %s: %w", op, c.Server, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("EST %s: reading the answer: %w", op, err)
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("EST %s: the answer is over %d bytes", op, maxBody)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusAccepted:
		secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After")))
		if err != nil || secs < 0 {
			secs = 60
		}
		return nil, &RetryError{After: time.Duration(secs) * time.Second}
	default:
		msg := strings.TrimSpace(string(b))
		if len(msg) > 256 {
			msg = msg[:256]
		}
		return nil, &StatusError{Op: op, Status: resp.StatusCode, Body: msg}
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "application/pkcs7-mime" {
		return nil, fmt.Errorf("EST %s: content type %q; want application/pkcs7-mime", op, resp.Header.Get("Content-Type"))
	}
	if st, ok := params["smime-type"]; ok && st != "certs-only" {
		return nil, fmt.Errorf("EST %s: smime-type %q; want certs-only", op, st)
	}
	der, err := decodeBase64(b)
	if err != nil {
		return nil, fmt.Errorf("EST %s: %w", op, err)
	}
	return der, nil
}

// CACerts fetches the CA certificates (RFC 7030 4.1).
func (c *Client) CACerts(ctx context.Context) ([]*x509.Certificate, error) {
	der, err := c.do(ctx, "cacerts", http.MethodGet, nil)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertsOnly(der)
	if err != nil {
		return nil, fmt.Errorf("EST cacerts: %w", err)
	}
	return certs, nil
}

// SimpleEnroll asks for a certificate for csr (DER PKCS#10), RFC 7030 4.2.1. It returns the
// certificates of the answer, the new certificate first when the server says which one it is
// (the one whose key is the CSR's).
func (c *Client) SimpleEnroll(ctx context.Context, csr []byte) ([]*x509.Certificate, error) {
	return c.enroll(ctx, "simpleenroll", csr)
}

// SimpleReenroll renews the identity the client authenticates with (RFC 7030 4.2.2): csr must
// carry the same subject and subjectAltName as the current certificate; Renew makes it so.
func (c *Client) SimpleReenroll(ctx context.Context, csr []byte) ([]*x509.Certificate, error) {
	if c.Identity == nil {
		return nil, errors.New("EST simplereenroll: no client identity: a re-enrolment is authenticated with the current certificate")
	}
	return c.enroll(ctx, "simplereenroll", csr)
}

func (c *Client) enroll(ctx context.Context, op string, csr []byte) ([]*x509.Certificate, error) {
	req, err := x509.ParseCertificateRequest(csr)
	if err != nil {
		return nil, fmt.Errorf("EST %s: the CSR: %w", op, err)
	}
	der, err := c.do(ctx, op, http.MethodPost, csr)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertsOnly(der)
	if err != nil {
		return nil, fmt.Errorf("EST %s: %w", op, err)
	}
	// Leaf first: the certificate for the CSR's key.
	for i, x := range certs {
		if samePublic(x.PublicKey, req.PublicKey) {
			certs[0], certs[i] = certs[i], certs[0]
			return certs, nil
		}
	}
	return nil, fmt.Errorf("EST %s: the answer holds no certificate for the CSR's key", op)
}

func samePublic(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// KeyFactory makes the new key of a renewal where it must live (a file, the TPM, an HSM).
type KeyFactory func(ctx context.Context) (crypto.Signer, error)

// Renewal is the result of Renew.
type Renewal struct {
	Key   crypto.Signer
	Chain []*x509.Certificate // the new certificate first
}

// Renew re-enrols c.Identity: a new key from newKey, a CSR signed by it with the current
// certificate's subject and subjectAltNames (RFC 7030 4.2.2), simplereenroll authenticated
// with the current identity. The caller stores the new chain and key and swaps to them; the
// old key is the caller's to destroy once the new identity is in use.
func Renew(ctx context.Context, c *Client, newKey KeyFactory) (*Renewal, error) {
	if c.Identity == nil || len(c.Identity.Chain) == 0 {
		return nil, errors.New("EST renew: no current identity to renew")
	}
	cur := c.Identity.Chain[0]
	key, err := newKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("EST renew: making the new key: %w", err)
	}
	tmpl := &x509.CertificateRequest{
		RawSubject:     cur.RawSubject,
		DNSNames:       cur.DNSNames,
		EmailAddresses: cur.EmailAddresses,
		IPAddresses:    cur.IPAddresses,
		URIs:           cur.URIs,
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("EST renew: signing the CSR with the new key: %w", err)
	}
	chain, err := c.SimpleReenroll(ctx, csr)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(chain[0].RawSubject, cur.RawSubject) {
		return nil, fmt.Errorf("EST renew: the new certificate's subject %q is not the current one's %q", chain[0].Subject, cur.Subject)
	}
	return &Renewal{Key: key, Chain: chain}, nil
}
