package main

// The building's cloud: Debian mosquitto as the upstream broker over mutual
// TLS with an ACL, as a real site's cloud broker would be. Its small PKI
// (CA, server certificate, the gateway's and the cloud application's client
// certificates) is made by gateway/pki once per site directory and reused.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgegw/edgegw/gateway/pki"
)

// Things of the upstream PKI: the gateway's identity upstream (its bridge
// client ID) and the cloud application (commander and telemetry sink).
const (
	gatewayThing = building + "-gw"
	cloudThing   = "cloud"
)

// UpstreamPKI is the cloud broker's CA and the certificates it trusts.
type UpstreamPKI struct {
	Dir  string
	pool *x509.CertPool
}

func (p *UpstreamPKI) CA() string         { return filepath.Join(p.Dir, pki.CACertFile) }
func (p *UpstreamPKI) ServerCert() string { return filepath.Join(p.Dir, "server.crt") }
func (p *UpstreamPKI) ServerKey() string  { return filepath.Join(p.Dir, "server.key") }
func (p *UpstreamPKI) Cert(thing string) string {
	return filepath.Join(p.Dir, "certs", thing+".crt")
}
func (p *UpstreamPKI) Key(thing string) string {
	return filepath.Join(p.Dir, "certs", thing+".key")
}

// OpenUpstreamPKI returns the upstream PKI in dir, generating it when absent.
func OpenUpstreamPKI(ctx context.Context, dir string) (*UpstreamPKI, error) {
	p := &UpstreamPKI{Dir: dir}
	if _, err := os.Stat(p.Key(cloudThing)); err != nil {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		o := pki.Options{Dir: dir}
		if _, err := pki.Init(ctx, o, pki.InitOptions{CN: "edgegw-load upstream CA", Hosts: []string{"localhost", "127.0.0.1"}}); err != nil {
			return nil, fmt.Errorf("upstream PKI: %w", err)
		}
		if _, err := pki.Issue(ctx, o, filepath.Join(dir, "certs"),
			pki.IssueRequest{Thing: gatewayThing, Type: "gateway"}, pki.IssueRequest{Thing: cloudThing, Type: "service"}); err != nil {
			return nil, fmt.Errorf("upstream PKI: %w", err)
		}
	}
	b, err := os.ReadFile(p.CA())
	if err != nil {
		return nil, err
	}
	p.pool = x509.NewCertPool()
	if !p.pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no CA certificate in " + p.CA())
	}
	return p, nil
}

// TLSConfig is thing's client configuration towards the upstream.
func (p *UpstreamPKI) TLSConfig(thing string) (*tls.Config, error) {
	c, err := tls.LoadX509KeyPair(p.Cert(thing), p.Key(thing))
	if err != nil {
		return nil, fmt.Errorf("loading upstream certificate of %s: %w", thing, err)
	}
	return &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{c}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, nil
}

// StartUpstreamTLS starts mosquitto on a free loopback port in dir with
// mutual TLS (client certificate required, its CN is the user name) and an
// ACL: the gateway may use sites/<site>/# only, the cloud application
// sites/#.
func StartUpstreamTLS(dir string, p *UpstreamPKI) (*Upstream, error) {
	acl := filepath.Join(dir, "acl")
	rules := fmt.Sprintf("user %s\ntopic readwrite sites/%s/#\n\nuser %s\ntopic readwrite sites/#\n", gatewayThing, building, cloudThing)
	if err := os.WriteFile(acl, []byte(rules), 0o600); err != nil {
		return nil, err
	}
	var c strings.Builder
	fmt.Fprintf(&c, "cafile %s\ncertfile %s\nkeyfile %s\n", p.CA(), p.ServerCert(), p.ServerKey())
	c.WriteString("require_certificate true\nuse_identity_as_username true\nallow_anonymous false\ntls_version tlsv1.2\n")
	fmt.Fprintf(&c, "acl_file %s\n", acl)
	return startUpstream(dir, c.String())
}
