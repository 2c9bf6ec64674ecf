package hw

import (
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The TSS2 PEM key format ("-----BEGIN TSS2 PRIVATE KEY-----") used by the openssl tpm2
// provider and engine, tpm2-tss-engine and go-tpm-keyfiles:
//
//	TPMKey ::= SEQUENCE {
//	  type        OBJECT IDENTIFIER,      -- 2.23.133.10.1.3 loadable key, .5 sealed data
//	  emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
//	  policy      [1] EXPLICIT SEQUENCE OF TPMPolicy OPTIONAL,
//	  secret      [2] EXPLICIT OCTET STRING OPTIONAL,
//	  authPolicy  [3] EXPLICIT SEQUENCE OF TPMAuthPolicy OPTIONAL,
//	  description [4] EXPLICIT UTF8String OPTIONAL,
//	  rsaParent   [5] EXPLICIT BOOLEAN OPTIONAL,
//	  parent      INTEGER,                -- 0x40000001 (owner: the standard ECC P-256 SRK) or a persistent handle
//	  pubkey      OCTET STRING,           -- TPM2B_PUBLIC
//	  privkey     OCTET STRING }          -- TPM2B_PRIVATE
//
// We write emptyAuth TRUE, parent 0x40000001 and no optional fields; we read keys with
// emptyAuth and no policy, secret or authPolicy (others are ErrUnsupported).

var (
	oidLoadableKey = asn1.ObjectIdentifier{2, 23, 133, 10, 1, 3}
	oidSealedData  = asn1.ObjectIdentifier{2, 23, 133, 10, 1, 5}
)

const tss2PEMType = "TSS2 PRIVATE KEY"

type tssKey struct {
	Type      asn1.ObjectIdentifier
	EmptyAuth bool
	Parent    uint32
	Public    []byte // TPM2B_PUBLIC, size prefix included
	Private   []byte // TPM2B_PRIVATE, size prefix included
}

func (k *tssKey) marshalPEM() []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(k.Type)
		if k.EmptyAuth {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1Boolean(true)
			})
		}
		b.AddASN1Int64(int64(k.Parent))
		b.AddASN1OctetString(k.Public)
		b.AddASN1OctetString(k.Private)
	})
	der := b.BytesOrPanic()
	return pem.EncodeToMemory(&pem.Block{Type: tss2PEMType, Bytes: der})
}

func parseTSSKey(data []byte) (*tssKey, error) {
	var block *pem.Block
	for {
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no TSS2 PRIVATE KEY PEM block")
		}
		if block.Type == tss2PEMType {
			break
		}
	}
	bad := errors.New("malformed TSS2 PRIVATE KEY")
	in := cryptobyte.String(block.Bytes)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, bad
	}
	k := &tssKey{}
	if !seq.ReadASN1ObjectIdentifier(&k.Type) {
		return nil, bad
	}
	for tag := 0; tag <= 5; tag++ {
		ctag := cbasn1.Tag(tag).Constructed().ContextSpecific()
		var field cryptobyte.String
		var present bool
		if !seq.ReadOptionalASN1(&field, &present, ctag) {
			return nil, bad
		}
		if !present {
			continue
		}
		switch tag {
		case 0:
			if !field.ReadASN1Boolean(&k.EmptyAuth) {
				return nil, bad
			}
		case 1, 2, 3:
			return nil, fmt.Errorf("%w: TSS2 key with a policy or imported secret", ErrUnsupported)
		}
	}
	var parent int64
	if !seq.ReadASN1Int64WithTag(&parent, cbasn1.INTEGER) || parent < 0 || parent > 0xFFFFFFFF {
		return nil, bad
	}
	k.Parent = uint32(parent)
	if !seq.ReadASN1Bytes(&k.Public, cbasn1.OCTET_STRING) || !seq.ReadASN1Bytes(&k.Private, cbasn1.OCTET_STRING) {
		return nil, bad
	}
	if !k.EmptyAuth {
		return nil, fmt.Errorf("%w: TSS2 key with a password (emptyAuth false)", ErrUnsupported)
	}
	return k, nil
}
