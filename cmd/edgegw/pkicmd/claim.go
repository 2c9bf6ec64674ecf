package pkicmd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/pki"
	"github.com/edgegw/edgegw/hw"
)

// policiesDir returns the config's policies directory (resolved against the config's
// directory), "" when the config or the key is absent.
func policiesDir(config string) (string, error) {
	b, err := os.ReadFile(config)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var view struct {
		Policies string `yaml:"policies"`
	}
	if err := yaml.Unmarshal(b, &view); err != nil {
		return "", fmt.Errorf("reading %s: %w", config, err)
	}
	if view.Policies == "" || filepath.IsAbs(view.Policies) {
		return view.Policies, nil
	}
	return filepath.Join(filepath.Dir(config), view.Policies), nil
}

func pkiClaimCmd(a app, f *pkiFlags) *cobra.Command {
	var (
		templates []string
		policies  string
		out       string
		days      int
		format    string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "claim NAME --template T [--template T]...",
		Short: "Issue a claim certificate: sensors built with it enrol themselves over MQTT",
		Long: `A claim certificate lets a batch of sensors enrol themselves with AWS IoT's fleet-provisioning
MQTT API on the local broker: connect with the claim, publish a CSR to
$aws/certificates/create-from-csr/json, then RegisterThing on
$aws/provisioning-templates/T/provision/json with the ownership token and parameters; the
template T (enrolment.templates in the config) decides the thing name, type, attributes and
policies. The sensor's key never leaves it.

The claim (CN=NAME, SAN URI urn:edgegw:claim:NAME, clientAuth) is written to --out as
NAME.crt, NAME.key (0600) and ca.crt, and registered as thing NAME of type claim with its
own policy claim-NAME, written to the config's policies directory (or --policies): connect
with client ID NAME or NAME-anything, publish only the requests for the given templates,
subscribe to and receive only their responses. The broker sends each response only to the
connection that asked.

Revoke a claim like any certificate: 'edgegw pki revoke NAME'. Each claim is rate-limited
(enrolment.rate_limit).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if len(templates) == 0 {
				return &cli.ExitError{Code: 2, Err: errors.New("pki claim: name at least one --template the claim may use")}
			}
			isJSON, err := a.JSONOutput(format, asJSON) // the CLI's (cmd/edgegw's output.go)
			if err != nil {
				return err
			}
			o, err := f.options(a, cmd)
			if err != nil {
				return err
			}
			if policies == "" {
				if policies, err = policiesDir(f.config); err != nil {
					return &cli.ExitError{Code: 1, Err: err}
				}
			}
			if policies == "" {
				return &cli.ExitError{Code: 2, Err: errors.New("pki claim: no policies directory: give --policies DIR or a config (-c) that names its policies directory")}
			}
			policy := "claim-" + name
			res, err := pki.Issue(cmd.Context(), o, out, pki.IssueRequest{Thing: name, Kind: pki.KindClaim, Type: "claim", Policies: []string{policy}, Days: days})
			if err != nil {
				return err
			}
			pfile := filepath.Join(policies, policy+".json")
			if err := writeIfChanged(pfile, enrol.ClaimPolicy(templates...)); err != nil {
				return fmt.Errorf("writing the claim's policy: %w", err)
			}
			clockWarning(a.Stderr(), res.ClockClamped)
			b := res.Bundles[0]
			if isJSON {
				v := pkiIssueView(res.Bundles, o.Devices, res.ClockClamped)
				v.PolicyFile = pfile
				return a.WriteJSON(a.Stdout(), v)
			}
			fmt.Fprintf(a.Stdout(), "claim %s: serial %s, valid until %s\n  cert:   %s\n  key:    %s (0600: put it on the sensors of this batch)\n  ca:     %s\n  policy: %s\nregistry: %s\nthen: systemctl reload edgegw\n",
				name, b.Serial, b.Cert.NotAfter.Format("2006-01-02"), b.CertFile, b.KeyFile, b.CAFile, pfile, o.Devices)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&templates, "template", nil, "provisioning template the claim may use; repeat")
	fl.StringVar(&policies, "policies", "", "policies directory (default: policies from the config)")
	fl.StringVar(&out, "out", ".", "directory for NAME.crt, NAME.key (0600) and ca.crt")
	fl.IntVar(&days, "days", pki.DefaultDeviceDays, "claim certificate lifetime in days")
	a.OutputFlags(cmd, &format, &asJSON)
	return cmd
}

// writeIfChanged writes data to path (mode 0644) with hw.WriteFileAtomic, unless the file
// already holds exactly data.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return hw.WriteFileAtomic(path, data, 0o644)
}
