package pkicmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw/cmd/edgegw/cli"
	"github.com/edgegw/edgegw/gateway/enrol"
)

// enrolTemplates returns the names of enrolment.templates in the config (nil when the config,
// the section or its templates are absent).
func enrolTemplates(config string) ([]string, error) {
	b, err := os.ReadFile(config)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var view struct {
		Enrolment *struct {
			Templates []struct {
				Name string `yaml:"name"`
			} `yaml:"templates"`
		} `yaml:"enrolment"`
	}
	if err := yaml.Unmarshal(b, &view); err != nil {
		return nil, fmt.Errorf("reading %s: %w", config, err)
	}
	if view.Enrolment == nil {
		return nil, nil
	}
	var names []string
	for _, t := range view.Enrolment.Templates {
		names = append(names, t.Name)
	}
	return names, nil
}

func pkiRenewPolicyCmd(a app, f *pkiFlags) *cobra.Command {
	var (
		templates []string
		policies  string
		out       string
	)
	cmd := &cobra.Command{
		Use:   "renew-policy [--template T]... [--out FILE|-]",
		Short: "Write the " + enrol.RenewPolicyName + " policy: enrolled sensors may renew their own certificate over MQTT",
		Long: `Writes the policy ` + enrol.RenewPolicyName + ` to the config's policies directory (or --policies) as
` + enrol.RenewPolicyName + `.json, or to --out (- for stdout). Attach it to the sensors through the
template (enrolment.templates[].policies: [your-policy, ` + enrol.RenewPolicyName + `]) or in devices.yaml, beside
their own policy. It allows publishing the renewal requests ($aws/certificates/create-from-csr/json
and RegisterThing of the templates, in JSON and CBOR) and subscribing to and receiving their
responses; nothing else, not even Connect (the sensor's own policy decides that).

The templates are --template, else every enrolment.templates[].name in the config (-c).
Run it again after adding a template, then: systemctl reload edgegw.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(templates) == 0 {
				var err error
				if templates, err = enrolTemplates(f.config); err != nil {
					return &cli.ExitError{Code: 1, Err: err}
				}
			}
			if len(templates) == 0 {
				return &cli.ExitError{Code: 2, Err: fmt.Errorf("pki renew-policy: no templates: give --template T, or a config (-c, now %s) with enrolment.templates", f.config)}
			}
			doc := enrol.RenewPolicy(templates...)
			if out == "-" {
				_, err := a.Stdout().Write(doc)
				return err
			}
			if out == "" {
				if policies == "" {
					var err error
					if policies, err = policiesDir(f.config); err != nil { // claim.go
						return &cli.ExitError{Code: 1, Err: err}
					}
				}
				if policies == "" {
					return &cli.ExitError{Code: 2, Err: errors.New("pki renew-policy: nowhere to write: give --out FILE (- for stdout), --policies DIR, or a config (-c) that names its policies directory")}
				}
				out = filepath.Join(policies, enrol.RenewPolicyName+".json")
			}
			if err := writeIfChanged(out, doc); err != nil { // claim.go
				return fmt.Errorf("writing the renewal policy: %w", err)
			}
			fmt.Fprintf(a.Stdout(), "policy %s for templates %v: %s\nattach it through enrolment.templates[].policies, then: systemctl reload edgegw\n",
				enrol.RenewPolicyName, templates, out)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&templates, "template", nil, "provisioning template whose RegisterThing the policy allows; repeat (default: every template in the config)")
	fl.StringVar(&policies, "policies", "", "policies directory (default: policies from the config)")
	fl.StringVar(&out, "out", "", "file to write (- for stdout; default: POLICIES/"+enrol.RenewPolicyName+".json)")
	return cmd
}
