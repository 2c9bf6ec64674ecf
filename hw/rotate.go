package hw

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Key rotation (the gateway's upstream identity, renewed in place): Successor
// names where the next key goes, next to the current one and never on top of
// anything; Destroy removes the old key once the new one is in use.
//
//	file:/etc/edgegw/gw.key          -> file:/etc/edgegw/gw-g2.key -> gw-g3.key ...
//	tpm:...;blob=/var/lib/x/gw.pem   -> blob=/var/lib/x/gw-g2.pem
//	tpm:...;handle=0x81000100        -> the next free persistent handle above it
//	pkcs11:...;object=gw[;id=..]?... -> object=gw-g2 (a fresh random id)

// maxProbe bounds the search for a free file name or handle.
const maxProbe = 256

var genSuffix = regexp.MustCompile(`-g(\d+)$`)

// nextGeneration returns name with its "-gN" suffix (before ext) counted up:
// "gw" -> "gw-g2", "gw-g2" -> "gw-g3".
func nextGeneration(name string, step int) string {
	n := 1
	if m := genSuffix.FindStringSubmatch(name); m != nil {
		n, _ = strconv.Atoi(m[1])
		name = name[:len(name)-len(m[0])]
	}
	return fmt.Sprintf("%s-g%d", name, n+step)
}

// nextPath is the first path after p (same directory and extensions,
// from the name's first dot) with nothing there.
func nextPath(p string) (string, error) {
	dir, base := filepath.Split(p)
	stem, ext := base, ""
	if i := strings.Index(base[1:], "."); i >= 0 { // gw.tpm2.pem: stem gw
		stem, ext = base[:i+1], base[i+1:]
	}
	for i := 1; i <= maxProbe; i++ {
		c := filepath.Join(dir, nextGeneration(stem, i)+ext)
		if _, err := os.Lstat(c); errors.Is(err, os.ErrNotExist) {
			return c, nil
		} else if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("%w: no free name after %s within %d tries", ErrExists, p, maxProbe)
}

// replaceAttr returns attrs (split on sep) with the attribute name set to
// value ("" drops it), in place of the old one, or appended.
func replaceAttr(attrs, sep, name, value string) string {
	parts := strings.Split(attrs, sep)
	out := parts[:0]
	done := false
	for _, p := range parts {
		if n, _, _ := strings.Cut(p, "="); strings.EqualFold(n, name) {
			if value != "" && !done {
				out = append(out, name+"="+value)
			}
			done = true
			continue
		}
		out = append(out, p)
	}
	if !done && value != "" {
		out = append(out, name+"="+value)
	}
	return strings.Join(out, sep)
}

// Successor returns the URI of a new key next to the one at uri (same
// device, directory, token) where nothing is yet; see the table above.
// "auto" is resolved first. It creates nothing.
func Successor(ctx context.Context, uri string, opts ...Option) (string, error) {
	s, err := successor(ctx, uri, buildOptions(opts))
	return s, uriErr("naming the next key", uri, err)
}

func successor(ctx context.Context, uri string, o options) (string, error) {
	if uri == "auto" {
		c, err := auto(ctx, o)
		if err != nil {
			return "", err
		}
		uri = c.URI
	}
	u, err := ParseURI(uri)
	if err != nil {
		return "", err
	}
	scheme, rest, _ := strings.Cut(uri, ":")
	switch u := u.(type) {
	case *FileURI:
		p, err := nextPath(u.Path)
		if err != nil {
			return "", err
		}
		return scheme + ":" + p, nil
	case *TPMURI:
		if u.Blob != "" {
			p, err := nextPath(u.Blob)
			if err != nil {
				return "", err
			}
			return scheme + ":" + replaceAttr(rest, ";", "blob", p), nil
		}
		h, err := freeHandle(ctx, u)
		if err != nil {
			return "", err
		}
		return scheme + ":" + replaceAttr(rest, ";", "handle", fmt.Sprintf("0x%08x", h)), nil
	case *PKCS11URI:
		path, query, hasQuery := strings.Cut(rest, "?")
		label := u.Object
		if label == "" {
			label = "edgegw"
		}
		path = replaceAttr(replaceAttr(path, ";", "id", ""), ";", "object", nextGeneration(label, 1))
		// A label taken already (an earlier rotation's leftover) is refused
		// by Create with ErrExists: the caller reports it.
		if hasQuery {
			return scheme + ":" + path + "?" + query, nil
		}
		return scheme + ":" + path, nil
	}
	return "", fmt.Errorf("%w: scheme", ErrUnsupported)
}

// freeHandle is the first owner persistent handle above u.Handle that holds
// no object.
func freeHandle(ctx context.Context, u *TPMURI) (uint32, error) {
	c := acquireTPM(u)
	defer c.release()
	var found uint32
	err := c.do(ctx, func(t transport.TPM) error {
		for h := u.Handle + 1; h <= 0x817FFFFF && h <= u.Handle+maxProbe; h++ {
			if _, err := (tpm2.ReadPublic{ObjectHandle: tpm2.TPMHandle(h)}).Execute(t); err != nil {
				if errors.Is(err, tpm2.TPMRCHandle) {
					found = h
					return nil
				}
				return fmt.Errorf("reading persistent handle 0x%08x: %w", h, err)
			}
		}
		return fmt.Errorf("%w: no free persistent handle within %d above 0x%08x", ErrExists, maxProbe, u.Handle)
	})
	return found, err
}

// Destroy removes the key at uri for good: the file (or TPM key blob) is
// deleted, a persistent TPM key evicted, a PKCS#11 key pair deleted from its
// token. There is no undo; callers destroy a key only when nothing uses it.
// "auto" is refused: name the key.
func Destroy(ctx context.Context, uri string) error {
	return uriErr("destroying key", uri, destroy(ctx, uri))
}

func destroy(ctx context.Context, uri string) error {
	u, err := ParseURI(uri)
	if err != nil {
		return err
	}
	switch u := u.(type) {
	case *FileURI:
		return removeKeyFile(u.Path)
	case *TPMURI:
		if u.Blob != "" {
			return removeKeyFile(u.Blob)
		}
		c := acquireTPM(u)
		defer c.release()
		return c.do(ctx, func(t transport.TPM) error {
			rsp, err := (tpm2.ReadPublic{ObjectHandle: tpm2.TPMHandle(u.Handle)}).Execute(t)
			if err != nil {
				if errors.Is(err, tpm2.TPMRCHandle) {
					return fmt.Errorf("%w: no key at persistent handle 0x%08x", ErrNotFound, u.Handle)
				}
				return err
			}
			_, err = tpm2.EvictControl{
				Auth:             tpm2.TPMRHOwner,
				ObjectHandle:     tpm2.NamedHandle{Handle: tpm2.TPMHandle(u.Handle), Name: rsp.Name},
				PersistentHandle: tpm2.TPMHandle(u.Handle),
			}.Execute(t)
			if err != nil {
				return fmt.Errorf("evicting 0x%08x (TPM2_EvictControl): %w", u.Handle, err)
			}
			return nil
		})
	case *PKCS11URI:
		return destroyPKCS11(ctx, u)
	}
	return fmt.Errorf("%w: scheme", ErrUnsupported)
}

func removeKeyFile(p string) error {
	if err := os.Remove(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNotFound, p)
		}
		return err
	}
	return nil
}
