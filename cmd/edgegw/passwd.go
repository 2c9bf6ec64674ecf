package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func init() { extraCommands = append(extraCommands, newPasswdCmd) }

// newPasswdCmd is `edgegw passwd FILE USER`: add or replace USER in a bcrypt
// password file (the optional second factor of a listener's password_file).
func newPasswdCmd(a *app) *cobra.Command {
	var format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "passwd FILE USER",
		Short: "Add or change a user in a listener password file (bcrypt)",
		Long: `passwd sets USER's password in FILE (created with mode 0600 if absent). The password
is read from the terminal without echo (asked twice), or as the first line of standard
input when it is not a terminal. A password is an extra factor: clients still need their
certificate.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			isJSON, err := jsonOutput(format, asJSON) // output.go
			if err != nil {
				return err
			}
			pw, err := readPassword(cmd.InOrStdin(), a.stderr)
			if err != nil {
				return err
			}
			if err := listen.SetPassword(args[0], args[1], pw); err != nil {
				return err
			}
			if isJSON {
				return writeJSONOut(a.stdout, passwdJSON{File: args[0], User: args[1]})
			}
			fmt.Fprintf(a.stdout, "password for %q set in %s\n", args[1], args[0])
			return nil
		},
	}
	outputFlags(cmd, &format, &asJSON)
	return cmd
}

// passwdJSON is `edgegw passwd -o json`.
type passwdJSON struct {
	File string `json:"file"`
	User string `json:"user"`
}

func readPassword(in io.Reader, prompt io.Writer) ([]byte, error) {
	if f, ok := in.(*os.File); ok {
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			p1, err := readNoEcho(f, prompt, "Password: ")
			if err != nil {
				return nil, err
			}
			p2, err := readNoEcho(f, prompt, "Repeat password: ")
			if err != nil {
				return nil, err
			}
			if string(p1) != string(p2) {
				return nil, errors.New("passwords do not match")
			}
			return p1, nil
		}
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return nil, fmt.Errorf("reading password from stdin: %w", err)
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}

// readNoEcho reads one line from the terminal f with echo off.
func readNoEcho(f *os.File, prompt io.Writer, label string) ([]byte, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return nil, err
	}
	defer func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }()
	fmt.Fprint(prompt, label)
	line, err := bufio.NewReader(f).ReadString('\n')
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, fmt.Errorf("reading password: %w", err)
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}
