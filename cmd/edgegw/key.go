package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/edgegw/edgegw/hw"
)

func init() { extraCommands = append(extraCommands, newKeyCmd) }

// keyDefaultStateDir is where "auto" keeps the gateway key (file or TPM blob).
const keyDefaultStateDir = "/var/lib/edgegw"

const keyURIHelp = `Key URIs:
  file:/etc/edgegw/gateway.key                  PEM (PKCS#8, SEC1 or PKCS#1), mode 0600
  tpm:handle=0x81000100                         persistent key in /dev/tpmrm0
  tpm:blob=/var/lib/edgegw/gateway.tpm2.pem     TSS2 PEM key blob (openssl tpm2 provider format)
  tpm:tcp=127.0.0.1:2321;handle=0x81000100      a TPM simulator (swtpm), platform port +1
  pkcs11:token=gw;object=gateway?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/edgegw/pin
  auto                                          TPM if /dev/tpmrm0 works, else a 0600 file
                                                (kept in --state-dir)`

func newKeyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Create the gateway's own key in a TPM, HSM or file, and make its CSR",
		Long: `The gateway's private key never leaves its TPM or HSM: create it there, make a
certificate signing request (CSR) on this device, have the upstream CA sign it
(e.g. AWS IoT "create certificate from CSR"), and point the config at the key URI.

` + keyURIHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(keyCreateCmd(a), keyCSRCmd(a), keyInfoCmd(a), keyRotateCmd(a)) // key_rotate.go
	return cmd
}

type keyFlags struct {
	uri      string
	stateDir string
}

func (f *keyFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.uri, "key", "", "key URI (see 'edgegw key --help')")
	cmd.Flags().StringVar(&f.stateDir, "state-dir", keyDefaultStateDir, "where --key auto keeps its key")
	_ = cmd.MarkFlagRequired("key")
}

// options returns the hw options and, for auto, tells the user what auto chose and why.
func (f *keyFlags) options(ctx context.Context, stderr io.Writer) ([]hw.Option, error) {
	opts := []hw.Option{hw.WithStateDir(f.stateDir)}
	if f.uri == "auto" {
		c, err := hw.Auto(ctx, opts...)
		if err != nil {
			return nil, &exitError{code: 1, err: err}
		}
		fmt.Fprintf(stderr, "key auto: %s (%s)\n", hw.Redact(c.URI), c.Reason)
	}
	return opts, nil
}

// printInfo prints what key info and key create say about a key: a table,
// or with json keyInfoJSON.
func printInfo(w io.Writer, info hw.KeyInfo, json bool) error {
	if json {
		return writeJSONOut(w, keyInfoJSON{URI: info.URI, Type: info.Type, Location: info.Location, PublicKeySHA256: info.PublicSHA256})
	}
	_, err := fmt.Fprintf(w, "uri:       %s\ntype:      %s\nlocation:  %s\nsha256:    %s\n", info.URI, info.Type, info.Location, info.PublicSHA256)
	return err
}

// keyInfoJSON is `edgegw key info -o json` (and key create's).
type keyInfoJSON struct {
	URI             string `json:"uri"`               // secrets (PINs) redacted
	Type            string `json:"type"`              // "ECDSA P-256", "RSA-2048", "Ed25519"
	Location        string `json:"location"`          // where the key lives, in words
	PublicKeySHA256 string `json:"public_key_sha256"` // hex SHA-256 of the DER SubjectPublicKeyInfo
}

func keyCreateCmd(a *app) *cobra.Command {
	var f keyFlags
	var typ, format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create --key URI [--type p256|rsa2048]",
		Short: "Create a new key; never overwrites an existing one",
		Long: `Create makes a new private key where the URI says (in the TPM or HSM it is generated
there and never leaves) and prints its type, location and the SHA-256 of its public key.
It refuses to replace an existing key file, persistent handle, blob or token object.
P-256 is the default and the best choice for TPMs; rsa2048 is allowed.

` + keyURIHelp,
		Example: `  edgegw key create --key tpm:handle=0x81000100
  edgegw key create --key file:/etc/edgegw/gateway.key --type rsa2048
  edgegw key create --key auto`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			isJSON, err := jsonOutput(format, asJSON)
			if err != nil {
				return err
			}
			kt, err := hw.ParseKeyType(typ)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--type: %w", err)}
			}
			ctx := cmd.Context()
			opts, err := f.options(ctx, a.stderr)
			if err != nil {
				return err
			}
			k, err := hw.Create(ctx, f.uri, kt, opts...)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			k.Close()
			info, err := hw.Info(ctx, f.uri, opts...)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			return printInfo(a.stdout, info, isJSON)
		},
	}
	f.add(cmd)
	outputFlags(cmd, &format, &asJSON)
	cmd.Flags().StringVar(&typ, "type", "p256", "key type: p256 or rsa2048")
	return cmd
}

func keyCSRCmd(a *app) *cobra.Command {
	var f keyFlags
	var cn, out string
	var sans []string
	cmd := &cobra.Command{
		Use:   "csr --key URI --cn NAME [--san NAME]... [--out FILE]",
		Short: "Make a certificate signing request signed by the key, on this device",
		Long: `CSR writes a PEM certificate signing request for the key (to stdout, or --out FILE).
The upstream CA signs it; the private key never leaves this device. Each --san is an
IP address, a URI (with "://"), an e-mail address (with "@") or a DNS name.
With --key auto the key is created on first use.

-o here is --out, the CSR file: the CSR is PEM, there is no JSON output.

` + keyURIHelp,
		Example: `  edgegw key csr --key tpm:handle=0x81000100 --cn plant-7-gw --out gateway.csr
  openssl req -in gateway.csr -verify -noout`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cn == "" {
				return &exitError{code: 2, err: fmt.Errorf("--cn is required (the gateway's name, e.g. its AWS IoT thing name)")}
			}
			ctx := cmd.Context()
			opts, err := f.options(ctx, a.stderr)
			if err != nil {
				return err
			}
			k, err := hw.Open(ctx, f.uri, opts...)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			defer k.Close()
			csr, err := hw.CSR(k, cn, sans)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("key %q: %w", hw.Redact(f.uri), err)}
			}
			if out == "" || out == "-" {
				_, err = a.stdout.Write(csr)
				return err
			}
			if err := hw.WriteFileAtomic(out, csr, 0o644); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("writing CSR: %w", err)}
			}
			fmt.Fprintf(a.stderr, "wrote %s\n", out)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&cn, "cn", "", "subject common name (required)")
	cmd.Flags().StringArrayVar(&sans, "san", nil, "subject alternative name (repeatable)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the CSR here instead of stdout")
	return cmd
}

func keyInfoCmd(a *app) *cobra.Command {
	var f keyFlags
	var format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info --key URI",
		Short: "Show a key's type, where it lives and its public key SHA-256",
		Long: `Info prints the key's type, where it lives, and the SHA-256 of its DER
SubjectPublicKeyInfo in hex: the value 'openssl pkey -pubin -outform DER | sha256sum'
gives for its public key, and for the public key in its certificate or CSR.

With -o json: {"uri", "type", "location", "public_key_sha256"} (key create too).

` + keyURIHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			isJSON, err := jsonOutput(format, asJSON)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			opts, err := f.options(ctx, a.stderr)
			if err != nil {
				return err
			}
			info, err := hw.Info(ctx, f.uri, opts...)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			return printInfo(a.stdout, info, isJSON)
		},
	}
	f.add(cmd)
	outputFlags(cmd, &format, &asJSON)
	return cmd
}
