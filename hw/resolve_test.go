package hw

import "testing"

func TestResolveURI(t *testing.T) {
	const dir = "/etc/edgegw"
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"auto", "auto", "auto"},
		{"bare relative path", "pki/server.key", "file:/etc/edgegw/pki/server.key"},
		{"bare absolute path", "/k/gw.key", "file:/k/gw.key"},
		{"bare dotted path", "./gw.key", "file:/etc/edgegw/gw.key"},
		{"file relative", "file:gw.key", "file:/etc/edgegw/gw.key"},
		{"file absolute", "file:/var/lib/edgegw/gw.key", "file:/var/lib/edgegw/gw.key"},
		{"tpm-sealed relative with options", "tpm-sealed:q.key;tcp=127.0.0.1:2321", "tpm-sealed:/etc/edgegw/q.key;tcp=127.0.0.1:2321"},
		{"tpm-sealed absolute", "tpm-sealed:/var/lib/edgegw/q.key", "tpm-sealed:/var/lib/edgegw/q.key"},
		{"tpm handle unchanged", "tpm:handle=0x81000100", "tpm:handle=0x81000100"},
		{"tpm blob relative", "tpm:tcp=127.0.0.1:2321;blob=gw.pem", "tpm:tcp=127.0.0.1:2321;blob=/etc/edgegw/gw.pem"},
		{"pkcs11 pin-source relative", "pkcs11:token=gw;object=gw?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=pin", "pkcs11:token=gw;object=gw?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/edgegw/pin"},
		{"pkcs11 without query", "pkcs11:token=gw;object=gw", "pkcs11:token=gw;object=gw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ResolveURI(tt.in, dir); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}
