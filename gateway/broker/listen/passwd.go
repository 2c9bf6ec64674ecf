package listen

import (
	"bufio"
	"bytes"
	"crypto/pbkdf2"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw/hw"
	"golang.org/x/crypto/bcrypt"
)

// Password files hold one "user:hash" per line ('#' comments and blank lines
// allowed), the format of Mosquitto's password file, so a file written by
// mosquitto_passwd works unchanged. Accepted hashes (as Mosquitto 2.0's
// src/security_default.c decodes them):
//
//	$7$ITER$SALT$HASH  PBKDF2-HMAC-SHA512, ITER iterations, SALT 12 bytes and
//	                   HASH 64 bytes in standard base64 (mosquitto_passwd 2.x)
//	$6$SALT$HASH       SHA-512(password || salt), same SALT and HASH sizes
//	                   (mosquitto_passwd 1.x, and 2.x with -H sha512)
//	$2a$, $2b$, $2y$   bcrypt (what `edgegw passwd` writes)
//
// A password is an extra factor: it is checked only after the client
// certificate has verified, never instead of it.

// PasswordCost is the bcrypt cost used by SetPassword.
const PasswordCost = 11

var validUser = regexp.MustCompile(`^[a-zA-Z0-9:_.@-]+$`)

// Passwords maps user names to their hashes (kept as written in the file).
type Passwords map[string][]byte

// Mosquitto's hash sizes (src/password_mosq.h: SALT_LEN, password_hash).
const (
	mosqSaltLen = 12
	mosqHashLen = 64
)

// mosqHash is a decoded Mosquitto "$6$" or "$7$" hash.
type mosqHash struct {
	iter int // 0 for $6$ (one SHA-512 over password||salt)
	salt []byte
	hash []byte
}

// parseHash checks one hash field; it returns the decoded Mosquitto hash,
// or nil for bcrypt.
func parseHash(hash string) (*mosqHash, error) {
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("bad bcrypt hash: %w", err)
		}
		return nil, nil
	case strings.HasPrefix(hash, "$7$"), strings.HasPrefix(hash, "$6$"):
	default:
		return nil, errors.New("unknown hash format (want $7$ or $6$ from mosquitto_passwd, or bcrypt $2b$ from edgegw passwd)")
	}
	parts := strings.Split(hash[1:], "$")
	m := &mosqHash{}
	if parts[0] == "7" {
		if len(parts) != 4 {
			return nil, errors.New("bad $7$ hash: want $7$ITERATIONS$SALT$HASH")
		}
		n, err := strconv.Atoi(parts[1])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad $7$ hash: iterations %q: want a number of at least 1", parts[1])
		}
		m.iter = n
		parts = append(parts[:1], parts[2:]...)
	}
	if len(parts) != 3 {
		return nil, errors.New("bad $6$ hash: want $6$SALT$HASH")
	}
	var err error
	if m.salt, err = base64.StdEncoding.DecodeString(parts[1]); err != nil || len(m.salt) != mosqSaltLen {
		return nil, fmt.Errorf("bad $%s$ hash: salt is not %d bytes of base64", parts[0], mosqSaltLen)
	}
	if m.hash, err = base64.StdEncoding.DecodeString(parts[2]); err != nil || len(m.hash) != mosqHashLen {
		return nil, fmt.Errorf("bad $%s$ hash: hash is not %d bytes of base64", parts[0], mosqHashLen)
	}
	return m, nil
}

// sum computes the Mosquitto hash of password with m's salt and iterations.
func (m *mosqHash) sum(password []byte) []byte {
	if m.iter == 0 {
		h := sha512.New()
		h.Write(password)
		h.Write(m.salt)
		return h.Sum(nil)
	}
	k, err := pbkdf2.Key(sha512.New, string(password), m.salt, m.iter, mosqHashLen)
	if err != nil { // only in FIPS 140-only mode; then nothing matches
		return nil
	}
	return k
}

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
			return nil, fmt.Errorf("%s:%d: want user:hash", name, ln)
		}
		if _, err := parseHash(hash); err != nil {
			return nil, fmt.Errorf("%s:%d: user %q: %w", name, ln, user, err)
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
	m, err := parseHash(string(h))
	switch {
	case err != nil:
		return ErrBadPassword
	case m != nil:
		if subtle.ConstantTimeCompare(m.sum(password), m.hash) != 1 {
			return ErrBadPassword
		}
	case bcrypt.CompareHashAndPassword(h, password) != nil:
		return ErrBadPassword
	}
	return nil
}

// dummyHash is a bcrypt hash of cost PasswordCost (of "edgegw-dummy"; what
// it hashes does not matter). Written out rather than computed at package
// initialization, which cost every start of the binary (each edgegw
// command) one bcrypt at cost 11: about 0.1 s here, seconds on a Pi Zero.
var dummyHash = []byte("$2a$11$YW4uNROmPkV2BVPsegPwE.aa5V2fi14eu.JGXVrNnlAmC03WWsWfK")

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
