package listen

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestPasswordsFromMosquittoPasswd reads files written by Debian's
// mosquitto_passwd ($7$ PBKDF2-SHA512 by default, $6$ SHA-512 with -H sha512)
// and checks passwords against them.
func TestPasswordsFromMosquittoPasswd(t *testing.T) {
	tool := gatewaytest.Need(t, "mosquitto_passwd", "mosquitto")
	for _, tc := range []struct {
		name   string
		args   []string
		prefix string
	}{
		{"pbkdf2 default", nil, "$7$"},
		{"sha512-pbkdf2", []string{"-H", "sha512-pbkdf2"}, "$7$"},
		{"sha512", []string{"-H", "sha512"}, "$6$"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "passwd")
			for i, u := range []string{"node-red", "other"} {
				args := append([]string{}, tc.args...)
				if i == 0 {
					args = append(args, "-c")
				}
				args = append(args, "-b", f, u, "pw-of-"+u)
				if out, err := gatewaytest.Run(t, 30e9, tool, args...); err != nil {
					t.Fatalf("mosquitto_passwd %v: %v\n%s", args, err, out)
				}
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), "node-red:"+tc.prefix) {
				t.Fatalf("file %q; want node-red:%s...", data, tc.prefix)
			}
			p, err := LoadPasswords(f)
			if err != nil {
				t.Fatalf("LoadPasswords: got %v; want nil", err)
			}
			for _, c := range []struct {
				user, pw string
				want     error
			}{
				{"node-red", "pw-of-node-red", nil},
				{"other", "pw-of-other", nil},
				{"node-red", "pw-of-other", ErrBadPassword},
				{"node-red", "", ErrBadPassword},
				{"nobody", "pw-of-node-red", ErrBadPassword},
			} {
				if err := p.Check(c.user, []byte(c.pw)); !errors.Is(err, c.want) {
					t.Errorf("Check(%q, %q) = %v; want %v", c.user, c.pw, err, c.want)
				}
			}
		})
	}
}

func TestParsePasswordsRefusals(t *testing.T) {
	salt, hash := "c2FsdHNhbHRzYWx0", strings.Repeat("A", 86)+"=="
	for _, tc := range []struct{ name, line, want string }{
		{"plain text", "u:secret", "unknown hash format"},
		{"bad bcrypt", "u:$2b$xx", "bad bcrypt hash"},
		{"7 without iterations", "u:$7$" + salt + "$" + hash, "want $7$ITERATIONS$SALT$HASH"},
		{"7 zero iterations", "u:$7$0$" + salt + "$" + hash, "iterations \"0\""},
		{"6 short salt", "u:$6$c2FsdA==$" + hash, "salt is not 12 bytes"},
		{"6 short hash", "u:$6$" + salt + "$AAAA", "hash is not 64 bytes"},
		{"no colon", "justauser", "want user:hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parsePasswords("pw", []byte("# c\n\n"+tc.line+"\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "pw:3:") {
				t.Errorf("got %v; want pw:3: ... %s", err, tc.want)
			}
		})
	}
	if _, err := parsePasswords("pw", []byte("u:$6$"+salt+"$"+hash+"\n")); err != nil {
		t.Errorf("well-formed $6$: got %v; want nil", err)
	}
}

func FuzzParsePasswords(f *testing.F) {
	f.Add([]byte("u:$7$101$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 86) + "==\n"))
	f.Add([]byte("u:$6$c2FsdHNhbHRzYWx0$AAAA\n# x\n"))
	f.Add([]byte("u:$2b$11$abcdefghijklmnopqrstuu5mQjDnyLZ2fQ0Zqg3m8vGqfTq0g2y8m\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parsePasswords("f", data)
		if err != nil {
			return
		}
		for u := range p {
			_ = p.Check(u, []byte("x"))
		}
	})
}
