package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() { extraCommands = append(extraCommands, newManCmd) }

// newManCmd returns the hidden `edgegw man --dir DIR` command, which writes one man page per
// visible command (edgegw.1, edgegw-run.1, edgegw-pki-init.1, ...) from the command help. The
// package build runs it (make deb) so the man pages never drift from --help.
//
// The date in the pages is $SOURCE_DATE_EPOCH when set (reproducible builds), else today.
func newManCmd(*app) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "man --dir DIR",
		Short:  "Write the man pages (section 1) into DIR",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			date, err := sourceDate()
			if err != nil {
				return err
			}
			return writeManPages(cmd.Root(), dir, date)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write the pages into (created if missing)")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

// writeManPages renders root and its visible subcommands as man pages into dir.
func writeManPages(root *cobra.Command, dir string, date time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating man page directory: %w", err)
	}
	root.DisableAutoGenTag = true // the generated-by footer carries a wall-clock date
	source := "edgegw"
	if root.Version != "" {
		source += " " + root.Version
	}
	header := &doc.GenManHeader{
		Title:   "EDGEGW",
		Section: "1",
		Source:  source,
		Manual:  "edgegw manual",
		Date:    &date,
	}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return fmt.Errorf("writing man pages into %q: %w", dir, err)
	}
	return nil
}

// sourceDate honours SOURCE_DATE_EPOCH (https://reproducible-builds.org/specs/source-date-epoch/).
func sourceDate() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Now().UTC(), nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970: %w", v, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}
