package renew

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/est"
	"github.com/edgegw/edgegw/hw"
)

// Caller is the bridge's request/response over its live upstream
// connection: publish payload on topic, return the first message on one of
// filters.
type Caller interface {
	Call(ctx context.Context, topic string, payload []byte, filters []string) (string, []byte, error)
}

// AWS signs with AWS IoT's fleet-provisioning MQTT API (JSON): the CSR (CN
// the current certificate's) to $aws/certificates/create-from-csr/json, then
// the ownership token and Parameters to Template's RegisterThing.
type AWS struct {
	Caller     Caller
	Template   string
	Parameters map[string]string
}

// Sign implements Source.
func (a *AWS) Sign(ctx context.Context, cur *tls.Certificate, key crypto.Signer) ([]*x509.Certificate, error) {
	csr, err := hw.CSR(key, cur.Leaf.Subject.CommonName, nil)
	if err != nil {
		return nil, err
	}
	var created enrol.CreateCertificateFromCSRResponse
	if err := a.call(ctx, enrol.TopicCreateFromCSR, enrol.CreateCertificateFromCSRRequest{CertificateSigningRequest: string(csr)}, &created); err != nil {
		return nil, err
	}
	chain, err := hw.ParseCertChain([]byte(created.CertificatePem))
	if err != nil {
		return nil, fmt.Errorf("create-from-csr accepted: certificatePem: %w", err)
	}
	if created.CertificateOwnershipToken == "" {
		return nil, errors.New("create-from-csr accepted without a certificateOwnershipToken")
	}
	var reg enrol.RegisterThingResponse
	if err := a.call(ctx, enrol.ProvisionTopic(a.Template), enrol.RegisterThingRequest{
		CertificateOwnershipToken: created.CertificateOwnershipToken, Parameters: a.Parameters,
	}, &reg); err != nil {
		return nil, err
	}
	return chain, nil
}

// call sends req on topic and decodes the /accepted answer into resp, or
// returns the /rejected one as an error.
func (a *AWS) call(ctx context.Context, topic string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	got, payload, err := a.Caller.Call(ctx, topic, body, []string{topic + enrol.SuffixAccepted, topic + enrol.SuffixRejected})
	if err != nil {
		return err
	}
	if strings.HasSuffix(got, enrol.SuffixRejected) {
		var e enrol.ErrorResponse
		if err := json.Unmarshal(payload, &e); err != nil {
			return fmt.Errorf("%s rejected (unreadable answer: %v)", topic, err)
		}
		return fmt.Errorf("%s rejected: %s (%d): %s", topic, e.ErrorCode, e.StatusCode, e.ErrorMessage)
	}
	if err := json.Unmarshal(payload, resp); err != nil {
		return fmt.Errorf("%s accepted, but the answer is not its JSON: %w", topic, err)
	}
	return nil
}

// EST signs with RFC 7030 simplereenroll (gateway/est), authenticated by the
// current identity. Client carries the server, label and trust; its
// Identity is set per renewal.
type EST struct {
	Client est.Client
}

// Sign implements Source.
func (e *EST) Sign(ctx context.Context, cur *tls.Certificate, key crypto.Signer) ([]*x509.Certificate, error) {
	signer, ok := cur.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("EST renew: the current key is not a crypto.Signer")
	}
	var chain []*x509.Certificate
	for _, der := range cur.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		chain = append(chain, c)
	}
	c := e.Client
	c.Identity = &est.Identity{Chain: chain, Key: signer}
	r, err := est.Renew(ctx, &c, func(context.Context) (crypto.Signer, error) { return key, nil })
	if err != nil {
		return nil, err
	}
	return r.Chain, nil
}
