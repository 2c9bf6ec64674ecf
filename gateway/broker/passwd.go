package broker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/edgegw/edgegw/hw"
	"golang.org/x/crypto/bcrypt"
)

// Password files hold one "user:bcrypt-hash" per line ('#' comments and blank
// lines allowed), the format of Mosquitto's password file with bcrypt hashes.
// A password is an extra factor: it is checked only after the client
// certificate has verified, never instead of it.

// PasswordCost is the bcrypt cost used by SetPassword.
const PasswordCost = 11

var validUser = regexp.MustCompile(`^[a-zA-Z0-9:_.@-]+$`)

// Passwords maps user names to bcrypt hashes.
type Passwords map[string][]byte

// LoadPasswords reads a password file; errors name file:line.
func LoadPasswords(path string) (Passwords, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading password file: %w", err)
	}
	return parsePasswords(path, data)
}

func parsePasswords(name string, data []byte) (Passwords, error) {
	p := Passwords{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || !validUser.MatchString(user) {
			return nil, fmt.Errorf("%s:%d: want user:bcrypt-hash", name, ln)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s:%d: user %q: not a bcrypt hash: %w", name, ln, user, err)
		}
		p[user] = []byte(hash)
	}
	return p, sc.Err()
}

// ErrBadPassword is returned for an unknown user or a wrong password.
var ErrBadPassword = errors.New("bad user name or password")

// Check verifies user's password (constant work for unknown users).
func (p Passwords) Check(user string, password []byte) error {
	h, ok := p[user]
	if !ok {
		// Same cost as a real comparison, so unknown users are not told apart by timing.
		_ = bcrypt.CompareHashAndPassword(dummyHash, password)
		return ErrBadPassword
	}
	if bcrypt.CompareHashAndPassword(h, password) != nil {
		return ErrBadPassword
	}
	return nil
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("edgegw-dummy"), PasswordCost)

// SetPassword adds or replaces user in the password file at path (created if
// absent), writing it atomically with mode 0600.
func SetPassword(path, user string, password []byte) error {
	if !validUser.MatchString(user) {
		return fmt.Errorf("user name %q: only letters, digits and :_.@- are allowed", user)
	}
	if len(password) == 0 {
		return errors.New("empty password")
	}
	if len(password) > 72 {
		return errors.New("password longer than 72 bytes (bcrypt limit)")
	}
	p := Passwords{}
	if data, err := os.ReadFile(path); err == nil {
		if p, err = parsePasswords(path, data); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading password file: %w", err)
	}
	h, err := bcrypt.GenerateFromPassword(password, PasswordCost)
	if err != nil {
		return fmt.Errorf("hashing password: %w", err)
	}
	p[user] = h
	users := make([]string, 0, len(p))
	for u := range p {
		users = append(users, u)
	}
	sort.Strings(users)
	var buf bytes.Buffer
	for _, u := range users {
		fmt.Fprintf(&buf, "%s:%s\n", u, p[u])
	}
	if err := hw.WriteFileAtomic(path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("writing password file: %w", err)
	}
	return nil
}
