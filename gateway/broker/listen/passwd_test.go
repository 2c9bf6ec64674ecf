package listen

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestSetPasswordAndCheck(t *testing.T) {
	f := filepath.Join(t.TempDir(), "passwd")
	if err := SetPassword(f, "node-red", []byte("s3cret")); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(f, "other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v (%v); want 0600", fi.Mode().Perm(), err)
	}
	p, err := LoadPasswords(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, pw string
		want     error
	}{
		{"node-red", "s3cret", nil},
		{"node-red", "wrong", ErrBadPassword},
		{"nobody", "s3cret", ErrBadPassword},
		{"other", "x", nil},
	} {
		if err := p.Check(tc.user, []byte(tc.pw)); !errors.Is(err, tc.want) {
			t.Errorf("Check(%q, %q) = %v; want %v", tc.user, tc.pw, err, tc.want)
		}
	}
	if _, err := parsePasswords("pw", []byte("a:notahash\n")); err == nil {
		t.Error("non-bcrypt hash accepted")
	}
}

// TestDummyHash: the hash compared for an unknown user is a valid bcrypt
// hash of the cost real ones are written with, so an unknown user costs
// the same comparison as a known one.
func TestDummyHash(t *testing.T) {
	cost, err := bcrypt.Cost(dummyHash)
	if err != nil || cost != PasswordCost {
		t.Fatalf("dummyHash: cost %d, %v; want a bcrypt hash of cost %d", cost, err, PasswordCost)
	}
	if err := bcrypt.CompareHashAndPassword(dummyHash, []byte("edgegw-dummy")); err != nil {
		t.Fatalf("dummyHash does not verify: %v", err)
	}
}
