package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/edgegw/edgegw/gateway/mosqimport"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newImportCmd) }

func newImportCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Carry another broker's configuration over to edgegw",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(a.importMosquittoCmd())
	return cmd
}

// importMosquittoCmd is `edgegw import mosquitto FILE -o DIR [--site NAME]`:
// mosqimport.Import followed by Result.WriteDir, as the package doc says.
//
// Exit codes: 0 the files were written (the report may still list lines that
// were not carried over: read IMPORT-REPORT.txt); 1 nothing was written (the
// configuration cannot be read, or an output file already exists); 2 usage.
func (a *app) importMosquittoCmd() *cobra.Command {
	var out, site string
	cmd := &cobra.Command{
		Use:   "mosquitto FILE -o DIR",
		Short: "Write an edgegw.yaml, policies and a registry from a mosquitto.conf",
		Long: `Import reads a Mosquitto 2.0 configuration (with its include_dir files and its
acl_file) and writes into DIR:

  edgegw.yaml         listeners, TLS files, the first bridge connection and its routes
  devices.yaml        one thing per ACL user, a group giving every client the patterns
  policies/*.json     the ACL as AWS IoT policies with the same effect
  IMPORT-REPORT.txt   every line that was not carried over, or not exactly, and why

-o here names the output directory; there is no JSON output (the report is text).

password_file is kept by reference. The import never overwrites: it refuses when any
output file exists in DIR. Check the result with 'edgegw check -c DIR/edgegw.yaml'.

Exit status: 0 the files were written (read the report: it may list lines that were
not carried over); 1 nothing was written (the configuration cannot be read, or DIR
already holds an output file); 2 usage error.`,
		Example: `  edgegw import mosquitto /etc/mosquitto/mosquitto.conf -o /etc/edgegw --site plant-7
  edgegw check -c /etc/edgegw/edgegw.yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &exitError{code: 2, err: fmt.Errorf("import mosquitto: want one mosquitto.conf, got %d arguments (see '%s --help')", len(args), cmd.CommandPath())}
			}
			if out == "" {
				return &exitError{code: 2, err: fmt.Errorf("import mosquitto: -o DIR is required: the directory to write edgegw.yaml, devices.yaml and policies/ into")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := mosqimport.Import(args[0], mosqimport.Options{Site: site})
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("import mosquitto: %w", err)}
			}
			if err := res.WriteDir(out); err != nil {
				if errors.Is(err, mosqimport.ErrExists) {
					err = fmt.Errorf("%w; choose an empty directory (the import never overwrites a configuration)", err)
				}
				return &exitError{code: 1, err: fmt.Errorf("import mosquitto: %w", err)}
			}
			counts := map[mosqimport.Kind]int{}
			for _, f := range res.Findings {
				counts[f.Kind]++
			}
			fmt.Fprintf(a.stdout, "%s: wrote %s, %s, %s/ (%s) and %s\n", args[0],
				filepath.Join(out, mosqimport.ConfigFile), filepath.Join(out, mosqimport.DevicesFile),
				filepath.Join(out, mosqimport.PoliciesDir), plural(len(res.Policies), "policy document"),
				filepath.Join(out, mosqimport.ReportFile))
			fmt.Fprintf(a.stdout, "report: %d not carried over, %d not exact, %d changed, %d invalid, %d notes\n",
				counts[mosqimport.NotCarried], counts[mosqimport.Inexact], counts[mosqimport.Changed],
				counts[mosqimport.Invalid], counts[mosqimport.Note])
			fmt.Fprintf(a.stdout, "next: edgegw check -c %s\n", filepath.Join(out, mosqimport.ConfigFile))
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "directory to write the edgegw configuration into (created if missing; never overwritten)")
	cmd.Flags().StringVar(&site, "site", "", "the site name written to edgegw.yaml (default mosquitto-import)")
	return cmd
}
