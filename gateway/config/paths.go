package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgegw/edgegw/hw"
)

// resolvePaths makes every relative path in c absolute against c.Dir.
func (c *Config) resolvePaths() {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(c.Dir, *p)
		}
	}
	abs(&c.StateDir)
	abs(&c.Devices)
	abs(&c.Policies)
	abs(&c.Store.Dir)
	c.Store.EncryptionKey = hw.ResolveURI(c.Store.EncryptionKey, c.Dir)
	abs(&c.Admin.Socket)
	abs(&c.Audit.File)
	for i := range c.Listeners {
		l := &c.Listeners[i]
		abs(&l.PasswordFile)
		if t := l.TLS; t != nil {
			abs(&t.CA)
			abs(&t.Cert)
			abs(&t.CRL)
			t.Key = hw.ResolveURI(t.Key, c.Dir)
		}
	}
	c.resolveBridgePaths(abs, func(u string) string { return hw.ResolveURI(u, c.Dir) }) // bridges.go
	abs(&c.Metrics.BasicAuthFile)
	if t := c.Metrics.TLS; t != nil {
		abs(&t.CA)
		abs(&t.Cert)
		t.Key = hw.ResolveURI(t.Key, c.Dir)
	}
}

// validateKeyURI checks a (resolved) key URI against hw's grammar (hw owns
// it: hw.ParseURI), so `edgegw check` refuses what hw.Open would refuse.
func validateKeyURI(r *report, path, uri string, required bool) {
	if uri == "" {
		if required {
			r.add(path, "required: a key URI, e.g. file:pki/server.key, tpm:handle=0x81000100, pkcs11:token=gw;object=gw or auto")
		}
		return
	}
	if uri == "auto" {
		return
	}
	if _, err := hw.ParseURI(uri); err != nil {
		r.add(path, "%q: %v", uri, err)
	}
}

// CheckFiles checks that every file the config names exists and is
// readable: listener ca, cert, crl, password_file and file: keys, the device
// registry, the policy directory, and the bridge's ca, cert and file: key.
// It returns a *Error naming the key that references each missing
// file, or nil. TPM and PKCS#11 keys are not opened here.
func (c *Config) CheckFiles() error {
	rep := newReport(c.File)
	if c.rep != nil {
		rep.pos = c.rep.pos
	}
	c.checkFiles(rep)
	return rep.err()
}

func (c *Config) checkFiles(r *report) {
	file := func(path, p string) {
		if p != "" {
			checkPath(r, path, p, false)
		}
	}
	key := func(path, uri string) {
		if p, ok := strings.CutPrefix(uri, "file:"); ok {
			checkPath(r, path, p, false)
		}
	}
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		file(p+".password_file", l.PasswordFile)
		if t := l.TLS; t != nil {
			file(p+".tls.ca", t.CA)
			file(p+".tls.cert", t.Cert)
			key(p+".tls.key", t.Key)
			file(p+".tls.crl", t.CRL)
		}
	}
	file("devices", c.Devices)
	if c.Policies != "" {
		checkPath(r, "policies", c.Policies, true)
	}
	c.checkBridgeFiles(file, key) // bridges.go
	file("metrics.basic_auth_file", c.Metrics.BasicAuthFile)
	if t := c.Metrics.TLS; t != nil {
		file("metrics.tls.ca", t.CA)
		file("metrics.tls.cert", t.Cert)
		key("metrics.tls.key", t.Key)
	}
}

func checkPath(r *report, key, path string, wantDir bool) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.add(key, "%s: no such file", path)
		return
	case err != nil:
		r.add(key, "%s: %v", path, unwrapPathError(err))
		return
	case wantDir && !st.IsDir():
		r.add(key, "%s: not a directory", path)
		return
	case !wantDir && st.IsDir():
		r.add(key, "%s: is a directory; want a file", path)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		r.add(key, "%s: cannot read: %v", path, unwrapPathError(err))
		return
	}
	if wantDir {
		if _, err = f.ReadDir(1); errors.Is(err, io.EOF) {
			err = nil
		}
	}
	f.Close()
	if err != nil {
		r.add(key, "%s: cannot read: %v", path, unwrapPathError(err))
	}
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Check is what `edgegw check` and `edgegw run` do before anything else:
// Load, then CheckFiles, with every problem of both in one
// *Error (files are checked even when the config has other errors, so
// the site engineer sees everything at once). The Config is returned only
// when there is no problem.
func Check(path string) (*Config, error) {
	data, dir, err := read(path)
	if err != nil {
		return nil, err
	}
	c, rep := parse(path, dir, data)
	c.checkFiles(rep)
	if err := rep.err(); err != nil {
		return nil, err
	}
	return c, nil
}
