package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRenewConfig(t *testing.T) {
	head := bridgesHead + "bridges:\n  - name: aws\n    upstreams: [{url: \"mqtts://up.example\"}]\n    client_id: gw\n    routes: [{topic: a}]\n    tls:\n      cert: gw.crt\n      key: \"tpm:handle=0x81000100\"\n"
	c, err := Parse("edgegw.yaml", "/etc/edgegw", []byte(head+"      renew: {source: est, est: \"https://est.example:8443\", est_ca: est-ca.pem, before: 20d}\n"))
	if err != nil {
		t.Fatalf("est renew: %v", err)
	}
	r := c.Bridges[0].TLS.Renew
	if r.Source != RenewEST || r.ESTCA != "/etc/edgegw/est-ca.pem" || r.Before.D() != 20*24*time.Hour {
		t.Errorf("renew: %+v; want source est, est_ca made absolute, before 20d", r)
	}
	if _, err := Parse("edgegw.yaml", "/etc/edgegw", []byte(head+"      renew: {source: aws, template: gw-renewal, parameters: {SerialNumber: \"7\"}}\n")); err != nil {
		t.Fatalf("aws renew: %v", err)
	}
	tests := []struct{ name, renew, want string }{
		{"no source", "{}", `edgegw.yaml:15: bridges[0].tls.renew.source: "": want aws (AWS IoT's create-from-csr over the upstream connection) or est (RFC 7030 simplereenroll)`},
		{"aws without template", "{source: aws}", `edgegw.yaml:15: bridges[0].tls.renew.template: required with source aws: the provisioning template's name, e.g. gateway-renewal`},
		{"est over http", "{source: est, est: \"http://est.example\"}", `edgegw.yaml:15: bridges[0].tls.renew.est: "http://est.example": want the EST server's https:// base URL, e.g. https://est.example:8443`},
		{"bad key type", "{source: aws, template: t, key_type: rsa1024}", `edgegw.yaml:15: bridges[0].tls.renew.key_type: "rsa1024": want p256 or rsa2048`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("edgegw.yaml", "/etc/edgegw", []byte(head+"      renew: "+tt.renew+"\n"))
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			if got := errLines(t, err); !reflect.DeepEqual(got, []string{tt.want}) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), tt.want)
			}
		})
	}
}

// TestCheckFilesRenewed: after a renewal (identity.json in the bridge's
// renew directory) the configured key and certificate may be gone.
func TestCheckFilesRenewed(t *testing.T) {
	dir := t.TempDir()
	conf := bridgesHead + "state_dir: " + dir + "\nbridges:\n  - name: aws\n    upstreams: [{url: \"mqtts://up.example\"}]\n    client_id: gw\n    routes: [{topic: a}]\n    tls: {cert: gw.crt, key: \"file:gw.key\"}\n"
	c, err := Parse("edgegw.yaml", dir, []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckFiles()
	if err == nil || !strings.Contains(err.Error(), "bridges[0].tls.cert") || !strings.Contains(err.Error(), "bridges[0].tls.key") {
		t.Fatalf("CheckFiles without the files: %v; want tls.cert and tls.key missing", err)
	}
	if err := os.MkdirAll(c.BridgeRenewDir("aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.BridgeRenewDir("aws"), "identity.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckFiles(); err != nil && (strings.Contains(err.Error(), "tls.cert") || strings.Contains(err.Error(), "tls.key")) {
		t.Errorf("CheckFiles with a renewed identity: %v; want tls.cert and tls.key not required", err)
	}
}
