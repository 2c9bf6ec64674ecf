package authorizer

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/edgegw/edgegw/gateway/authz"
)

// ConnectInfo is what the broker knows at CONNECT. The embedded Identity is the
// authz request context the returned policies are evaluated against (see
// authz.Identity for which field gives which policy key).
type ConnectInfo struct {
	authz.Identity
	Password     []byte // nil when the CONNECT carries no password
	ConnectionID string // for logs; a random UUID when empty
	Listener     string // the listener's name, passed to the authorizer
}

// Event is what the authorizer receives: AWS's custom-authorizer event (fields that
// do not apply are left out, as AWS does) and an "edgegw" object with what only the
// gateway knows.
type Event struct {
	Token              string             `json:"token,omitempty"`
	SignatureVerified  bool               `json:"signatureVerified"`
	Protocols          []string           `json:"protocols"`
	ProtocolData       ProtocolData       `json:"protocolData"`
	ConnectionMetadata ConnectionMetadata `json:"connectionMetadata"`
	Edgegw             EdgeData           `json:"edgegw"`
}

// ProtocolData is AWS's protocolData for an MQTT connection.
type ProtocolData struct {
	TLS  *TLSData  `json:"tls,omitempty"`
	MQTT *MQTTData `json:"mqtt,omitempty"`
}

// TLSData is protocolData.tls.
type TLSData struct {
	ServerName string `json:"serverName,omitempty"`
}

// MQTTData is protocolData.mqtt; Password is base64, as AWS sends it.
type MQTTData struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	ClientID string `json:"clientId,omitempty"`
}

// ConnectionMetadata is AWS's connectionMetadata.
type ConnectionMetadata struct {
	ID string `json:"id"`
}

// EdgeData is what edgegw adds: the source address, the listener, and the verified
// client certificate (absent on a listener without client certificates).
type EdgeData struct {
	SourceIP    string    `json:"sourceIp,omitempty"`
	Listener    string    `json:"listener,omitempty"`
	Certificate *CertData `json:"certificate,omitempty"`
}

// CertData identifies the verified client certificate.
type CertData struct {
	ThingName     string `json:"thingName,omitempty"`
	CommonName    string `json:"commonName"`
	Subject       string `json:"subject"`
	Issuer        string `json:"issuer"`
	SerialNumber  string `json:"serialNumber"`
	CertificateID string `json:"certificateId"` // SHA-256 of the DER, hex: AWS's certificate ID
}

// Answer is the authorizer's reply, as a Lambda authorizer returns it.
// PolicyDocuments are JSON strings (as AWS's TestInvokeAuthorizer shows them) or
// the documents themselves as objects (as AWS's Lambda example returns them).
type Answer struct {
	IsAuthenticated          bool              `json:"isAuthenticated"`
	PrincipalID              string            `json:"principalId"`
	PolicyDocuments          []json.RawMessage `json:"policyDocuments"`
	DisconnectAfterInSeconds int               `json:"disconnectAfterInSeconds"`
	RefreshAfterInSeconds    int               `json:"refreshAfterInSeconds"`
}

// AWS's limits on an answer.
const (
	maxPolicyDocuments = 10
	maxPolicyChars     = 2048
	minSeconds         = 300
	maxSeconds         = 86400
	maxAnswerBytes     = 64 << 10
)

var principalRE = regexp.MustCompile(`^[a-zA-Z0-9]{1,128}$`)

// parseAnswer decodes and checks an answer; authenticated answers have their
// policies parsed by authz. Errors wrap ErrMalformed or ErrPolicy.
func parseAnswer(data []byte) (*Answer, []*authz.Policy, error) {
	if len(data) > maxAnswerBytes {
		return nil, nil, fmt.Errorf("%w: answer of %d bytes: at most %d", ErrMalformed, len(data), maxAnswerBytes)
	}
	var a Answer
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&a); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("%w: data after the JSON answer", ErrMalformed)
	}
	if !a.IsAuthenticated {
		return &a, nil, nil
	}
	switch {
	case !principalRE.MatchString(a.PrincipalID):
		return nil, nil, fmt.Errorf("%w: principalId %q: want 1-128 of [a-zA-Z0-9]", ErrMalformed, a.PrincipalID)
	case len(a.PolicyDocuments) == 0:
		return nil, nil, fmt.Errorf("%w: no policyDocuments", ErrMalformed)
	case len(a.PolicyDocuments) > maxPolicyDocuments:
		return nil, nil, fmt.Errorf("%w: %d policyDocuments: at most %d", ErrMalformed, len(a.PolicyDocuments), maxPolicyDocuments)
	case a.DisconnectAfterInSeconds < minSeconds || a.DisconnectAfterInSeconds > maxSeconds:
		return nil, nil, fmt.Errorf("%w: disconnectAfterInSeconds %d: want %d to %d", ErrMalformed, a.DisconnectAfterInSeconds, minSeconds, maxSeconds)
	case a.RefreshAfterInSeconds < minSeconds || a.RefreshAfterInSeconds > maxSeconds:
		return nil, nil, fmt.Errorf("%w: refreshAfterInSeconds %d: want %d to %d", ErrMalformed, a.RefreshAfterInSeconds, minSeconds, maxSeconds)
	}
	pols := make([]*authz.Policy, 0, len(a.PolicyDocuments))
	for i, raw := range a.PolicyDocuments {
		doc := []byte(raw)
		var s string
		if json.Unmarshal(raw, &s) == nil {
			doc = []byte(s)
		} else if len(bytes.TrimSpace(raw)) == 0 || bytes.TrimSpace(raw)[0] != '{' {
			return nil, nil, fmt.Errorf("%w: policyDocuments[%d]: want a JSON string or object", ErrMalformed, i)
		} else {
			var b bytes.Buffer
			if err := json.Compact(&b, raw); err == nil {
				doc = b.Bytes()
			}
		}
		if n := len([]rune(string(doc))); n > maxPolicyChars {
			return nil, nil, fmt.Errorf("%w: policyDocuments[%d]: %d characters: at most %d", ErrMalformed, i, n, maxPolicyChars)
		}
		p, err := authz.ParsePolicy(authz.Source{Name: fmt.Sprintf("policyDocuments[%d].json", i), Data: doc})
		if err != nil {
			return nil, nil, fmt.Errorf("%w: principal %q: %v", ErrPolicy, a.PrincipalID, err)
		}
		pols = append(pols, p)
	}
	return &a, pols, nil
}

// event builds the authorizer's event for one connect. The password goes in base64,
// as AWS sends it.
func (a *Authorizer) event(info ConnectInfo, token string, verified bool) Event {
	ev := Event{
		Token:              token,
		SignatureVerified:  verified,
		Protocols:          []string{"mqtt"},
		ConnectionMetadata: ConnectionMetadata{ID: info.ConnectionID},
		Edgegw:             EdgeData{Listener: info.Listener},
	}
	if info.TLS {
		ev.Protocols = []string{"tls", "mqtt"}
		ev.ProtocolData.TLS = &TLSData{ServerName: info.ServerName}
	}
	m := &MQTTData{Username: info.Username, ClientID: info.ClientID}
	if info.Password != nil {
		m.Password = base64.StdEncoding.EncodeToString(info.Password)
	}
	ev.ProtocolData.MQTT = m
	if info.SourceIP.IsValid() {
		ev.Edgegw.SourceIP = info.SourceIP.Unmap().String()
	}
	if c := info.Cert; c != nil {
		sum := sha256.Sum256(c.Raw)
		cd := &CertData{ThingName: info.ThingName, CommonName: c.Subject.CommonName, Subject: c.Subject.String(),
			Issuer: c.Issuer.String(), CertificateID: hex.EncodeToString(sum[:])}
		if c.SerialNumber != nil {
			cd.SerialNumber = c.SerialNumber.String()
		}
		ev.Edgegw.Certificate = cd
	}
	return ev
}

// signatureParam is the username query parameter with the token's signature.
const signatureParam = "x-amz-customauthorizer-signature"

// verifyToken finds the token and its signature in the username's query string
// (`user?TOKEN_KEY=TOKEN&x-amz-customauthorizer-signature=SIG`) and verifies SIG,
// base64 RSA-SHA256 PKCS #1 v1.5 over TOKEN, with any configured key.
func verifyToken(username, keyName string, keys []*rsa.PublicKey) (string, error) {
	_, query, ok := strings.Cut(username, "?")
	if !ok {
		return "", fmt.Errorf("%w: the username has no query string with %s and %s", ErrSignature, keyName, signatureParam)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("%w: the username's query string: %v", ErrSignature, err)
	}
	token, sig64 := q.Get(keyName), q.Get(signatureParam)
	if token == "" || sig64 == "" {
		return "", fmt.Errorf("%w: the username's query string lacks %s or %s", ErrSignature, keyName, signatureParam)
	}
	sig, err := base64.StdEncoding.DecodeString(sig64)
	if err != nil {
		return "", fmt.Errorf("%w: %s is not base64", ErrSignature, signatureParam)
	}
	sum := sha256.Sum256([]byte(token))
	for _, k := range keys {
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil {
			return token, nil
		}
	}
	return "", fmt.Errorf("%w: the token's signature does not verify with any configured key", ErrSignature)
}

// parsePublicKey reads one PEM RSA public key (PUBLIC KEY or a certificate).
func parsePublicKey(name string, data []byte) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block: want an RSA PUBLIC KEY", name)
	}
	var pub any
	var err error
	switch blk.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(blk.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(blk.Bytes); err == nil {
			pub = c.PublicKey
		}
	default:
		return nil, fmt.Errorf("%s: PEM block %q: want PUBLIC KEY", name, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	k, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an RSA key (AWS token signing keys are RSA)", name)
	}
	if k.N.BitLen() < 2048 {
		return nil, fmt.Errorf("%s: RSA key of %d bits: AWS requires at least 2048", name, k.N.BitLen())
	}
	return k, nil
}
