package est

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
)

// A certs-only PKCS#7 (CMS) message, RFC 7030 4.1.3 and RFC 5652 5.1: a SignedData with no
// signers whose certificates field carries the certificates.
var (
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

// contentInfo is the outer ContentInfo; Content is the [0] EXPLICIT element as a whole.
type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue
}

// encapContentInfo is SignedData's EncapsulatedContentInfo: type data, no content.
type encapContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue // SET OF AlgorithmIdentifier (empty for certs-only)
	ContentInfo      encapContentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"` // [0] IMPLICIT SET OF Certificate
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      asn1.RawValue // SET OF SignerInfo (empty)
}

// ErrNoCertificates is returned for a PKCS#7 message that holds no certificate.
var ErrNoCertificates = errors.New("the PKCS#7 message holds no certificate")

// ParseCertsOnly parses a DER certs-only PKCS#7 message and returns its certificates in the
// order they appear.
func ParseCertsOnly(der []byte) ([]*x509.Certificate, error) {
	var ci contentInfo
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil {
		return nil, fmt.Errorf("reading PKCS#7 ContentInfo: %w", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("reading PKCS#7 ContentInfo: trailing data")
	}
	if !ci.ContentType.Equal(oidSignedData) || ci.Content.Class != asn1.ClassContextSpecific || ci.Content.Tag != 0 {
		return nil, fmt.Errorf("PKCS#7 content type %v is not signedData", ci.ContentType)
	}
	var sd signedData
	if rest, err = asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, fmt.Errorf("reading PKCS#7 SignedData: %w", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("reading PKCS#7 SignedData: trailing data")
	}
	if len(sd.Certificates.Bytes) == 0 {
		return nil, ErrNoCertificates
	}
	certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
	if err != nil {
		return nil, fmt.Errorf("reading the certificates of a PKCS#7 message: %w", err)
	}
	return certs, nil
}

// MarshalCertsOnly encodes certs as a DER certs-only PKCS#7 message.
func MarshalCertsOnly(certs []*x509.Certificate) ([]byte, error) {
	var raw bytes.Buffer
	for _, c := range certs {
		raw.Write(c.Raw)
	}
	emptySet := asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: []byte{}}
	sd := signedData{
		Version:          1,
		DigestAlgorithms: emptySet,
		ContentInfo:      encapContentInfo{ContentType: oidData},
		Certificates:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: raw.Bytes()},
		SignerInfos:      emptySet,
	}
	inner, err := asn1.Marshal(sd)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(contentInfo{ContentType: oidSignedData, Content: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner}})
}

// decodeBase64 decodes an EST body: base64 (RFC 7030 4: Content-Transfer-Encoding base64)
// with line breaks anywhere.
func decodeBase64(body []byte) ([]byte, error) {
	clean := bytes.Map(func(r rune) rune {
		switch r {
		case '\r', '\n', ' ', '\t':
			return -1
		}
		return r
	}, body)
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	if err != nil {
		return nil, fmt.Errorf("the body is not base64: %w", err)
	}
	return out[:n], nil
}

// encodeBase64 encodes der as base64 in 64-character lines.
func encodeBase64(der []byte) []byte {
	s := base64.StdEncoding.EncodeToString(der)
	var b bytes.Buffer
	for len(s) > 64 {
		b.WriteString(s[:64])
		b.WriteString("\r\n")
		s = s[64:]
	}
	b.WriteString(s)
	b.WriteString("\r\n")
	return b.Bytes()
}
