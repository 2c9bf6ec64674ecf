package hw

import (
	"path/filepath"
	"strings"
)

// ResolveURI normalizes a key or secret URI from a config file: a bare path becomes
// file:PATH, and relative paths in file:PATH, tpm-sealed:PATH[;opts],
// tpm:...blob=PATH and pkcs11:...?pin-source=PATH become absolute against
// dir. Other URIs (tpm:handle=..., auto, "") are returned unchanged. It does
// not open anything.
func ResolveURI(uri, dir string) string {
	if uri == "" || uri == "auto" {
		return uri
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok || strings.ContainsAny(scheme, `/\.`) {
		return "file:" + abs(uri)
	}
	switch scheme {
	case "file":
		return "file:" + abs(rest)
	case "tpm-sealed":
		path, opts, hasOpts := strings.Cut(rest, ";")
		if hasOpts {
			return "tpm-sealed:" + abs(path) + ";" + opts
		}
		return "tpm-sealed:" + abs(path)
	case "tpm":
		parts := strings.Split(rest, ";")
		for i, p := range parts {
			if v, ok := strings.CutPrefix(p, "blob="); ok {
				parts[i] = "blob=" + abs(v)
			}
		}
		return "tpm:" + strings.Join(parts, ";")
	case "pkcs11":
		path, query, hasQuery := strings.Cut(rest, "?")
		if !hasQuery {
			return uri
		}
		params := strings.Split(query, "&")
		for i, p := range params {
			if v, ok := strings.CutPrefix(p, "pin-source="); ok && !strings.Contains(v, ":") {
				params[i] = "pin-source=" + abs(v)
			}
		}
		return "pkcs11:" + path + "?" + strings.Join(params, "&")
	}
	return uri
}
